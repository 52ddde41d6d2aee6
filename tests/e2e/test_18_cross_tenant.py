"""The cross-tenant suite, generated: every REST operation of the OpenAPI document and every
tenant-facing gRPC method of the generated descriptors, called with organization B's key against
organization A's objects (a finished job, a running one, one held in the queue, its cost, a webhook
and a delivery, an API key, user caps and their audit entry, an invite, A's organization and user),
answers B exactly as for an object that does not exist, and carries nothing of A's (no id, name,
command, output or secret, in bodies, headers, stream frames, gRPC messages or trailers). Lists and
streams B reads hold none of A's ids; writes (cancel, hold, release, re-prioritise, delete, revoke,
caps) leave A's objects as they were, re-read as A.

A route or method added later is probed without anyone writing a test for it; one whose inputs name
an id of a kind this suite does not know fails it (``test_every_route_and_method_can_be_probed``,
which needs no stack) until it is taught in ``tests/e2e/crosstenant.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi.routing import APIRoute
from gpufleet.v1 import common_pb2, identity_pb2

from services.gateway.entrypoints.app import _build, openapi_spec
from shared.cursors import encode_cursor
from shared.devstack import Stack
from tests.e2e import crosstenant as ct
from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e

GRPC_SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
# Outside the OpenAPI document on purpose: the static dashboard and the API's own documentation.
NOT_IN_SCHEMA = (
    "/",
    "/ui",
    "/ui/",
    "/ui/{asset_path:path}",
    "/docs",
    "/docs/oauth2-redirect",
    "/v1/openapi.json",
)
COUNTS: dict[str, Any] = {"probes": 0, "routes": set(), "methods": set()}


@dataclass
class Tenants:
    a_key: str
    b_key: str
    world: ct.World
    jobs: list[str]  # A's finished, running and held jobs, in that order


def test_every_route_and_method_can_be_probed() -> None:
    """No stack needed: each operation and tenant method has probes, and no route hides from the document."""
    spec = openapi_spec()
    rest = ct.rest_probes(spec, jobs=3, catalog="any")
    documented = {(path, m.upper()) for path, ops in spec["paths"].items() for m in ops}
    assert {where for where, _ in rest} == {f"{m} {p}" for p, m in documented}
    assert all(probes for _, probes in rest)
    hidden = [
        (r.path, sorted(r.methods or ()))
        for r in _build(None).routes
        if isinstance(r, APIRoute) and not r.include_in_schema and r.path not in NOT_IN_SCHEMA
    ]
    assert not hidden, f"routes outside the OpenAPI document escape the cross-tenant suite: {hidden}"
    grpc_ = ct.grpc_probes(jobs=3)
    assert {m for m, _ in grpc_} == set(ct.tenant_methods()) and all(p for _, p in grpc_)
    # Every kind a probe asks for is one the world below provides.
    kinds = {s.kind for _, ps in grpc_ for p in ps for s in ct._slots(p.template)}
    kinds |= {
        s.kind for _, ps in rest for p in ps for s in ct._slots([p.path_params, p.query, p.headers, p.body])
    }
    assert kinds <= WORLD_KINDS, sorted(kinds - WORLD_KINDS)


WORLD_KINDS = {
    "job",
    "webhook",
    "delivery",
    "key",
    "organization",
    "user",
    "gpu",
    "event",
    "cursor",
    "audit",
    "idempotency_key",
    "invite",
    "join_token",
    "node",
    "operator",
    "project",
}


async def _first_event_id(api: httpx.AsyncClient) -> str:
    async with api.stream("GET", "/events", params={"from": "start"}) as r:
        assert r.status_code == 200, await r.aread()
        async with asyncio.timeout(30):
            async for line in r.aiter_lines():
                if line.startswith("id:"):
                    return line.removeprefix("id:").strip()
    raise AssertionError("A's event stream sent no event")


async def _grpc_as(stack: Stack, service: str, method: str, request: Any, key: str, out: Any) -> Any:
    async with grpc.aio.insecure_channel(stack.target(service)) as channel:
        call = channel.unary_unary(
            f"/gpufleet.v1.{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=out.FromString,
        )
        return await call(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)


@pytest.fixture(scope="module")
async def tenants(stack: Stack, receiver: Any) -> AsyncIterator[Tenants]:
    """Two fresh organizations; A with one object of every kind the API has, B with nothing yet."""
    tag = "acme" + uuid.uuid4().hex[:12]
    a = await stack.create_organization(f"Crosstenant {tag}", f"owner@{tag}.example", f"Owner {tag}")
    other = uuid.uuid4().hex[:8]
    b = await stack.create_organization(f"Crosstenant other {other}", f"owner@{other}.example", "Bea")
    a_key, b_key = a.api_key.secret, b.api_key.secret
    ct.set_receiver(receiver.url + "/crosstenant-b")
    secrets: set[str] = {a_key}
    async with client(stack, a_key) as api:
        me = (await api.get("/me")).json()
        user_id = me["principal"]["user_id"]
        r = await api.post(
            "/webhooks", json={"url": f"{receiver.url}/{tag}/hook", "description": f"{tag} hook"}
        )
        assert r.status_code == 201, r.text
        webhook = r.json()
        r = await api.post("/api-keys", json={"name": f"{tag}-key", "scopes": ["jobs:read"]})
        assert r.status_code == 201, r.text
        key = r.json()
        secrets |= {
            webhook["secret"],
            key["secret"],
            (await api.get("/webhooks/job-secret")).json()["secret"],
        }

        idempotency = f"{tag}-idempotency"
        r = await api.post(
            "/jobs",
            json={
                "command": f"echo {tag}-output",
                "name": f"{tag}-finished",
                "gpu_count": 1,
                "webhook_url": f"{receiver.url}/{tag}/job-hook",
            },
            headers={"Idempotency-Key": idempotency},
        )
        assert r.status_code == 201, r.text
        finished = await wait_status(api, r.json()["id"], {"succeeded"}, timeout=120)

        async def cost() -> bool:
            return (await api.get(f"/jobs/{finished['id']}/cost")).status_code == 200

        async def delivery() -> list[dict[str, Any]]:
            r = await api.get("/webhook-deliveries", params={"webhook_id": webhook["id"]})
            return list(r.json()["deliveries"])

        await eventually(cost, timeout=60)
        deliveries = await eventually(delivery, timeout=60)

        r = await api.post("/jobs", json={"command": "sleep 600", "name": f"{tag}-running", "gpu_count": 1})
        assert r.status_code == 201, r.text
        running = await wait_status(api, r.json()["id"], {"running"}, timeout=120)
        r = await api.post(
            "/jobs",
            json={"command": f"echo {tag}-held", "name": f"{tag}-held", "hold": True, "priority": 40},
            headers={"Idempotency-Key": f"{idempotency}-2"},
        )
        assert r.status_code == 201, r.text
        held = r.json()

        r = await api.put("/organization/user-caps", json={"caps": [{"user_id": user_id, "max_gpus": 2}]})
        assert r.status_code == 200, r.text
        audit = (await api.get("/organization/policy-audit")).json()["entries"]
        event_id = await _first_event_id(api)
        catalog = (await api.get("/gpu-types")).json()["gpu_types"]
        assert catalog, "the fleet catalog is empty"

    invite_ids: list[str] = []
    if "IdentityService/CreateInvite" in ct.tenant_methods():
        created = await _grpc_as(
            stack,
            "identity",
            "IdentityService/CreateInvite",
            identity_pb2.CreateInviteRequest(email=f"invitee@{tag}.example", role="member"),
            a_key,
            identity_pb2.CreatedInvite,
        )
        invite_ids.append(created.invite.id)
        secrets.add(created.token)

    project_ids: list[str] = []
    async with client(stack, a_key) as api:
        # A project of A's, with A's owner as a member (docs/projects.md).
        r = await api.post("/projects", json={"name": f"{tag} project", "slug": f"{tag}-project"})
        assert r.status_code == 201, r.text
        project_ids.append(r.json()["id"])
        r = await api.put(f"/projects/{project_ids[0]}/members/{user_id}", json={"role": "contributor"})
        assert r.status_code == 200, r.text

    join_tokens: list[str] = []
    operators: list[str] = []
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {stack.admin_token}"}, timeout=15
    ) as operator:
        paths = (await operator.get("/v1/openapi.json")).json()["paths"]
        if "/v1/admin/operators" in paths and "get" in paths["/v1/admin/operators"]:
            listed = (await operator.get("/v1/admin/operators")).json()
            items = (
                next((v for v in listed.values() if isinstance(v, list)), [])
                if isinstance(listed, dict)
                else listed
            )
            operators += [o["id"] for o in items if isinstance(o, dict) and "id" in o]
        if "/v1/admin/join-tokens" in paths:
            r = await operator.post(
                "/v1/admin/join-tokens",
                json={"organization_id": a.organization.id, "description": f"{tag} token"},
            )
            assert r.status_code == 201, r.text
            join_tokens.append(r.json()["id"])
            secrets |= {v for k, v in r.json().items() if k in ("token", "secret") and v}

    jobs = [finished["id"], running["id"], held["id"]]
    at = datetime.fromisoformat(finished["created_at"].replace("Z", "+00:00"))
    values: dict[str, list[Any]] = {
        "job": jobs,
        "webhook": [webhook["id"]],
        "delivery": [deliveries[0]["id"]],
        "key": [key["id"]],
        "organization": [a.organization.id],
        "user": [user_id],
        "gpu": [*running["gpu_ids"], *finished["gpu_ids"]],
        "event": [event_id],
        "cursor": [encode_cursor(at, uuid.UUID(finished["id"]))],
        "audit": [audit[0]["id"]],
        # One for REST, one for gRPC: after the REST probe, B has a job of its own under the first.
        "idempotency_key": [idempotency, f"{idempotency}-2"],
        "invite": invite_ids or ["(no invites)"],
        "join_token": join_tokens or ["(no join tokens)"],
        "node": [running["node_id"]],
        "operator": operators or [str(uuid.uuid4())],  # none named yet: the bootstrap token only
        "project": project_ids,
    }
    markers = {
        tag,
        *jobs,
        webhook["id"],
        key["id"],
        a.organization.id,
        user_id,
        *(d["id"] for d in deliveries),
        *(d["event_id"] for d in deliveries),
        *invite_ids,
        *join_tokens,
        *project_ids,
        *secrets,
    }
    try:
        yield Tenants(a_key, b_key, ct.World(values, markers), jobs)
    finally:
        async with client(stack, a_key) as api:
            for job_id in jobs[1:]:
                await api.post(f"/jobs/{job_id}/cancel")


async def _snapshot(stack: Stack, tenants: Tenants) -> dict[str, Any]:
    """What B's writes must not change, read as A."""
    async with client(stack, tenants.a_key) as api:
        jobs = {}
        for job_id in tenants.jobs:
            job = (await api.get(f"/jobs/{job_id}")).json()
            jobs[job_id] = {k: job[k] for k in ("status", "held", "priority", "cancel_requested", "name")}
        hooks = sorted(
            (w["id"], w["url"], w["is_active"], w["description"], tuple(w["events"]))
            for w in (await api.get("/webhooks")).json()["webhooks"]
        )
        keys = sorted((k["id"], k["revoked_at"]) for k in (await api.get("/api-keys")).json()["api_keys"])
        caps = (await api.get("/organization/user-caps")).json()["caps"]
        me = (await api.get("/me")).json()["organization"]
    out = {"jobs": jobs, "webhooks": hooks, "keys": keys, "caps": caps, "organization": me}
    methods = ct.tenant_methods()
    if "IdentityService/ListMembers" in methods:
        members = await _grpc_as(
            stack,
            "identity",
            "IdentityService/ListMembers",
            common_pb2.Empty(),
            tenants.a_key,
            identity_pb2.ListMembersResponse,
        )
        out["members"] = sorted((m.user_id, m.role) for m in members.members)
    if "IdentityService/ListInvites" in methods:
        invites = await _grpc_as(
            stack,
            "identity",
            "IdentityService/ListInvites",
            common_pb2.Empty(),
            tenants.a_key,
            identity_pb2.ListInvitesResponse,
        )
        out["invites"] = sorted((i.id, i.revoked_at) for i in invites.invites)
    return out


@pytest.fixture(scope="module", autouse=True)
def _note(request: pytest.FixtureRequest) -> Any:
    yield
    if COUNTS["probes"]:
        line = (
            f"cross-tenant: {COUNTS['probes']} probes over {len(COUNTS['routes'])} routes "
            f"and {len(COUNTS['methods'])} methods"
        )
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(line)


def _order(where: str) -> int:
    """Reads first (B has created nothing yet), then writes."""
    return 0 if where.startswith("GET ") else 1


async def test_every_rest_operation_answers_b_as_for_a_missing_object(stack: Stack, tenants: Tenants) -> None:
    world = tenants.world
    before = await _snapshot(stack, tenants)
    wrong: list[str] = []
    probes = 0
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {tenants.b_key}"}, timeout=15
    ) as api:
        spec = (await api.get("/v1/openapi.json")).json()
        name = (await api.get("/v1/gpu-types")).json()["gpu_types"][0]["name"]
        operations = sorted(
            ct.rest_probes(spec, jobs=len(tenants.jobs), catalog=name), key=lambda w: _order(w[0])
        )
        for where, plans in operations:
            COUNTS["routes"].add(where)
            for plan in plans:
                mine, used = plan.fill(world.a)
                if plan.paired:
                    missing, used_missing = plan.fill(world.missing)
                    if plan.method == "GET":
                        got, baseline = await asyncio.gather(ct.send(api, mine), ct.send(api, missing))
                    else:  # one after the other: B's state ends as the missing object's write left it
                        got, baseline = await ct.send(api, mine), await ct.send(api, missing)
                    probes += 2
                    whole = plan.method == "GET" or got.status >= 400 or baseline.status >= 400
                    if ct.comparable(got, used, whole) != ct.comparable(baseline, used_missing, whole):
                        wrong.append(
                            f"{where} {mine['params'] or ''}: A's object -> {got.status} {got.text[:300]!r}; "
                            f"a missing one -> {baseline.status} {baseline.text[:300]!r}"
                        )
                else:
                    got = await ct.send(api, mine)
                    probes += 1
                    if got.status >= 500:
                        wrong.append(f"{where} {mine['params'] or ''}: {got.status} {got.text[:300]!r}")
                leaked = ct.rest_leaks(world, got, used)
                if plan.paired:
                    leaked += ct.rest_leaks(world, baseline, used_missing)
                if leaked:
                    wrong.append(
                        f"{where} {mine['params'] or ''}: B's answer holds A's {leaked}: {got.text[:300]!r}"
                    )
    COUNTS["probes"] += probes
    assert not wrong, "\n".join(wrong)
    assert await _snapshot(stack, tenants) == before
    await _the_checks_can_fail(stack, tenants, spec)


async def _the_checks_can_fail(stack: Stack, tenants: Tenants, spec: dict[str, Any]) -> None:
    """The same comparison and leak check, made with A's own key, do see A's job: they are not vacuous."""
    plan = next(p for w, ps in ct.rest_probes(spec, 1, "any") if w == "GET /v1/jobs/{job_id}" for p in ps)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {tenants.a_key}"}, timeout=15
    ) as api:
        mine, used = plan.fill(tenants.world.a)
        missing, used_missing = plan.fill(tenants.world.missing)
        got, baseline = await ct.send(api, mine), await ct.send(api, missing)
        listed = await ct.send(
            api, {"method": "GET", "url": "/v1/jobs", "params": {}, "headers": {}, "json": None}
        )
    assert ct.comparable(got, used, True) != ct.comparable(baseline, used_missing, True)
    assert ct.rest_leaks(tenants.world, listed, []), "A's own job list shows none of A's markers"


async def test_every_tenant_grpc_method_answers_b_as_for_a_missing_object(
    stack: Stack, tenants: Tenants, receiver: Any
) -> None:
    world = tenants.world
    before = await _snapshot(stack, tenants)
    where_served: dict[str, str] = {}
    for service in GRPC_SERVICES:
        for name in await ct.served_services(stack.target(service)):
            where_served.setdefault(name, stack.target(service))
    wrong: list[str] = []
    probes = 0
    channels: dict[str, grpc.aio.Channel] = {}

    def a_value(slot: ct.Slot) -> Any:
        # A's second idempotency key: B's REST probe already holds a job of its own under the first.
        return world.a(ct.Slot(slot.kind, 1) if slot.kind == "idempotency_key" else slot)

    try:
        for method, plans in sorted(ct.grpc_probes(len(tenants.jobs)), key=lambda w: not w[1][0].read):
            service = plans[0].descriptor.containing_service.full_name
            assert service in where_served, f"no server of the stack offers {service}"
            target = where_served[service]
            channel = channels.setdefault(target, grpc.aio.insecure_channel(target))
            COUNTS["methods"].add(method)
            for plan in plans:
                mine, used = plan.fill(a_value, receiver.url + "/crosstenant-b")
                if plan.paired:
                    missing, used_missing = plan.fill(world.missing, receiver.url + "/crosstenant-b")
                    if plan.read:
                        got, baseline = await asyncio.gather(
                            ct.call(channel, plan, mine, tenants.b_key),
                            ct.call(channel, plan, missing, tenants.b_key),
                        )
                    else:  # one after the other: B's state ends as the missing object's write left it
                        got = await ct.call(channel, plan, mine, tenants.b_key)
                        baseline = await ct.call(channel, plan, missing, tenants.b_key)
                    probes += 2
                    if ct.grpc_comparable(plan, got, used) != ct.grpc_comparable(
                        plan, baseline, used_missing
                    ):
                        wrong.append(
                            f"{method}: A's object -> {got.code} {got.details!r} {got.messages!r:.300}; "
                            f"a missing one -> {baseline.code} {baseline.details!r} {baseline.messages!r:.300}"
                        )
                else:
                    got = await ct.call(channel, plan, mine, tenants.b_key)
                    probes += 1
                    if got.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                        wrong.append(f"{method}: {got.code} {got.details!r}")
                leaked = ct.grpc_leaks(world, got, used)
                if plan.paired:
                    leaked += ct.grpc_leaks(world, baseline, used_missing)
                if leaked:
                    wrong.append(f"{method}: B's answer holds A's {leaked}: {got.messages!r:.300}")
    finally:
        for channel in channels.values():
            await channel.close()
    COUNTS["probes"] += probes
    assert not wrong, "\n".join(wrong)
    assert await _snapshot(stack, tenants) == before
