"""Scoped keys on the running stack, through REST: each scope against each route (403 problem naming the
missing scope where refused), the issue's finding (an owner's jobs:read key is read-only), expiring
keys minting keys, and revocation refused through another service within about a second."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from shared import scopes
from shared.contracts import limits

from .helpers import client

pytestmark = pytest.mark.e2e

PROBLEM = "https://gpufleet.dev/problems/insufficient-scope"


def _routes(job_id: str, hook_url: str) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(HTTP method, path, JSON body, the gRPC method the gateway calls for it)."""
    missing = str(uuid.uuid4())
    return [
        ("POST", "/jobs", {"command": "echo scoped", "gpu_count": 1}, "JobService/SubmitJob"),
        (
            "POST",
            "/jobs:batchCreate",
            {"jobs": [{"command": "echo scoped", "gpu_count": 1}]},
            "JobService/SubmitJobs",
        ),
        ("GET", "/jobs", None, "JobService/ListJobs"),
        ("GET", f"/jobs/{job_id}", None, "JobService/GetJob"),
        ("GET", f"/jobs/{job_id}:watch", None, "JobService/WatchJob"),
        ("GET", f"/jobs/{job_id}/logs", None, "JobOutputService/ReadOutput"),
        ("GET", f"/jobs/{job_id}/logs?follow=true", None, "JobOutputService/FollowOutput"),
        ("POST", f"/jobs/{missing}/cancel", None, "JobService/CancelJob"),
        ("POST", f"/jobs/{missing}/hold", None, "JobService/HoldJob"),
        ("POST", f"/jobs/{missing}/release", None, "JobService/ReleaseJob"),
        ("PATCH", f"/jobs/{missing}", {"priority": 60}, "JobService/UpdateJobPriority"),
        ("GET", "/gpus", None, "FleetService/ListGpus"),
        ("GET", "/nodes", None, "FleetService/ListNodes"),
        ("GET", "/gpu-types", None, "FleetService/ListGpuTypes"),
        ("GET", f"/jobs/{job_id}/cost", None, "BillingService/GetJobCost"),
        ("GET", "/costs", None, "BillingService/ListJobCosts"),
        ("GET", "/costs/summary?group_by=day", None, "BillingService/SummarizeCosts"),
        ("GET", "/utilization", None, "MonitoringService/GetUtilization"),
        ("GET", "/utilization/series", None, "MonitoringService/GetUtilizationSeries"),
        (
            "POST",
            "/webhooks",
            {"url": hook_url, "events": ["job.succeeded"]},
            "NotificationService/CreateWebhook",
        ),
        ("GET", "/webhooks", None, "NotificationService/ListWebhooks"),
        ("GET", "/webhooks/job-secret", None, "NotificationService/GetJobWebhookSecret"),
        ("DELETE", f"/webhooks/{missing}", None, "NotificationService/DeleteWebhook"),
        ("GET", "/webhook-deliveries", None, "NotificationService/ListDeliveries"),
        ("PATCH", f"/webhooks/{missing}", {"description": "x"}, "NotificationService/UpdateWebhook"),
        ("POST", f"/webhooks/{missing}/rotate-secret", {}, "NotificationService/RotateWebhookSecret"),
        ("POST", "/webhooks/job-secret/rotate", {}, "NotificationService/RotateJobWebhookSecret"),
        (
            "POST",
            f"/webhook-deliveries/{missing}/redeliver",
            None,
            "NotificationService/RedeliverDelivery",
        ),
        ("GET", "/me", None, "IdentityService/GetOrganization"),
        ("GET", "/api-keys", None, "IdentityService/ListApiKeys"),
        ("POST", "/api-keys", {"name": "child", "scopes": ["keys:read"]}, "IdentityService/CreateApiKey"),
        ("DELETE", f"/api-keys/{missing}", None, "IdentityService/RevokeApiKey"),
        ("GET", "/members", None, "IdentityService/ListMembers"),
        ("GET", "/invites", None, "IdentityService/ListInvites"),
        (
            "POST",
            "/invites",
            {"email": "scoped-invitee@example.com", "role": "viewer"},
            "IdentityService/CreateInvite",
        ),
        ("DELETE", f"/invites/{missing}", None, "IdentityService/RevokeInvite"),
        ("PATCH", f"/members/{missing}", {"role": "viewer"}, "IdentityService/UpdateMember"),
        ("DELETE", f"/members/{missing}", None, "IdentityService/RemoveMember"),
        ("GET", "/organization/user-caps", None, "PolicyService/GetUserCaps"),
        ("PUT", "/organization/user-caps", {"caps": []}, "PolicyService/SetUserCaps"),
        ("GET", "/organization/policy-audit", None, "PolicyService/ListOrganizationAudit"),
        ("GET", "/organization/project-policy", None, "PolicyService/GetProjectPolicies"),
        ("PUT", "/organization/project-policy", {"policies": []}, "PolicyService/SetProjectPolicies"),
        ("GET", "/audit", None, "AuditService/ListAudit"),
        ("POST", "/projects", {"name": f"scoped {missing[:8]}"}, "ProjectService/CreateProject"),
        ("GET", "/projects", None, "ProjectService/ListProjects"),
        ("GET", f"/projects/{missing}", None, "ProjectService/GetProject"),
        ("PATCH", f"/projects/{missing}", {"description": "x"}, "ProjectService/UpdateProject"),
        ("DELETE", f"/projects/{missing}", None, "ProjectService/ArchiveProject"),
        ("GET", f"/projects/{missing}/members", None, "ProjectService/ListProjectMembers"),
        ("GET", f"/projects/{missing}/members/{missing}", None, "ProjectService/GetProjectMember"),
        (
            "PUT",
            f"/projects/{missing}/members/{missing}",
            {"role": "viewer"},
            "ProjectService/SetProjectMember",
        ),
        ("DELETE", f"/projects/{missing}/members/{missing}", None, "ProjectService/RemoveProjectMember"),
    ]


async def _key(owner: str, stack, *held: str, expires_in: int = 0) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"name": "scoped", "scopes": list(held)}
    if expires_in:  # REST leaves it out for "never"
        body["expires_in_seconds"] = expires_in
    async with client(stack, owner) as api:
        r = await api.post("/api-keys", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
async def job_id(stack, orgs) -> str:  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as api:
        r = await api.post("/jobs", json={"command": "echo owned", "gpu_count": 1})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# gRPC only (no REST route yet); tests/integration/test_scopes.py covers them over the scheduler's gRPC.
# JobService/ListAllocations has no route of its own: /gpus and /nodes merge its answer (same scope).
NOT_ON_REST: set[str] = {"JobService/ListAllocations"}

# Streams that never end by themselves, so not in the request loop above: GET /v1/events
# (tests/e2e/test_9_events.py checks its per-kind scope refusal).
STREAMS: set[str] = {"NotificationService/StreamEvents"}


def test_the_routes_cover_every_tenant_method() -> None:
    called = {m for *_, m in _routes("x", "http://x")}
    assert called | NOT_ON_REST | STREAMS == set(scopes.SCOPE_OF) | set(scopes.EVERY_KEY)


async def _answer(api: httpx.AsyncClient, verb: str, path: str, body: Any) -> httpx.Response:
    """The answer to one request; a following stream (``follow=true``, a job's ``:watch``) only up to its
    headers unless it is refused: whether a scope lets it in is decided before it streams, and a job's
    output may take a while to be complete on a loaded machine."""
    if "follow=true" not in path and not path.endswith(":watch"):
        return await api.request(verb, path, json=body)
    async with api.stream(verb, path, json=body) as r:
        if r.status_code >= 400:
            await r.aread()
            return r
        return httpx.Response(r.status_code, headers=r.headers, content=b"")


@pytest.mark.parametrize("scope", limits.KEY_SCOPES)
async def test_each_scope_against_each_route(stack, orgs, receiver, job_id, scope) -> None:  # type: ignore[no-untyped-def]
    key = (await _key(orgs["a"], stack, scope))["secret"]
    wrong: list[tuple[str, str, int, Any]] = []
    async with client(stack, key) as api:
        for verb, path, body, method in _routes(job_id, receiver.url + "/scopes"):
            r = await _answer(api, verb, path, body)
            if scopes.allows((scope,), method):
                if r.status_code == 403:
                    wrong.append((verb, path, r.status_code, r.json()))
            else:
                problem = r.json() if r.status_code == 403 else None
                needed = scopes.SCOPE_OF[method]
                if (
                    problem is None
                    or problem["type"] != PROBLEM
                    or r.headers["content-type"] != "application/problem+json"
                    or f"lacks the {needed} scope" not in problem["detail"]
                ):
                    wrong.append((verb, path, r.status_code, r.text[:200]))
    assert not wrong, wrong


async def test_an_owners_jobs_read_key_is_read_only(stack, orgs, receiver, job_id) -> None:  # type: ignore[no-untyped-def]
    reader = (await _key(orgs["a"], stack, "jobs:read"))["secret"]
    async with client(stack, reader) as api:
        assert (await api.get(f"/jobs/{job_id}")).status_code == 200
        refused = {
            "submit": await api.post("/jobs", json={"command": "echo", "gpu_count": 1}),
            "cancel": await api.post(f"/jobs/{job_id}/cancel"),
            "webhook": await api.post("/webhooks", json={"url": receiver.url + "/scopes"}),
            "secret": await api.get("/webhooks/job-secret"),
        }
    for what, r in refused.items():
        assert r.status_code == 403 and r.json()["type"] == PROBLEM, (what, r.text)
    assert "jobs:write" in refused["submit"].json()["detail"]
    assert "webhooks:write" in refused["secret"].json()["detail"]
    async with client(stack, orgs["a"]) as api:
        assert (await api.get(f"/jobs/{job_id}")).json()["status"] != "cancelled"


async def test_an_expiring_key_cannot_mint_a_longer_lived_key(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    hour = (await _key(orgs["a"], stack, expires_in=3600))["secret"]
    async with client(stack, hour) as api:
        r = await api.post("/api-keys", json={"name": "forever"})
        assert r.status_code == 403 and "cannot outlive it" in r.json()["detail"]
        assert (
            await api.post("/api-keys", json={"name": "shorter", "expires_in_seconds": 600})
        ).status_code == 201


async def test_a_mistyped_key_is_401(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    key = orgs["a"]
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    async with client(stack, typo) as api:
        assert (await api.get("/jobs")).status_code == 401


async def test_a_revoked_key_is_refused_everywhere_within_a_second(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    doomed = await _key(orgs["a"], stack, "jobs:read")
    async with client(stack, doomed["secret"]) as api, client(stack, orgs["a"]) as owner:
        assert (await api.get("/jobs")).status_code == 200  # cached in the gateway and the scheduler
        assert (await owner.delete(f"/api-keys/{doomed['id']}")).status_code == 204
        revoked = time.monotonic()
        while (await api.get("/jobs")).status_code == 200:
            assert time.monotonic() - revoked < 1.5, "a revoked key still worked after a second"
            await asyncio.sleep(0.05)
        assert (await api.get("/costs")).status_code == 401
