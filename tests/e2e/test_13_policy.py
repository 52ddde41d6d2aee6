"""Scheduling policy through authorised admin calls on the running stack (one agent, 2 simulated GPUs):
the operator's quota and its borrowing, an organization admin's per-user cap, each with its "why
pending" answer while the other GPU is idle, a time limit that ends a job ``timed_out`` after a
warning (in its output and as an event), who may call what, and the audit trail of every change.

Every test puts the policy back as it found it (other tests share the stack)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import active_jobs as _active
from tests.e2e.helpers import client, eventually, wait_status
from tests.e2e.helpers import quiet as _quiet
from tests.e2e.helpers import submit as _submit
from tests.e2e.helpers import wait_pending as _pending
from tests.e2e.test_9_events import open_stream

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}


def operator(stack) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return client(stack, stack.admin_token)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


@pytest.fixture(scope="module")
async def gpu_type(stack, orgs) -> str:  # type: ignore[no-untyped-def]
    """The agent's GPU type, once both GPUs are registered."""
    async with client(stack, orgs["a"]) as api:

        async def two() -> list[dict[str, Any]] | None:
            gpus = (await api.get("/gpus")).json()["gpus"]
            return gpus if len(gpus) == 2 else None

        gpus = await eventually(two, timeout=120)
    [name] = {g["gpu_type"] for g in gpus}
    return str(name)


@pytest.fixture
async def blocker(stack, orgs) -> AsyncIterator[list[str]]:  # type: ignore[no-untyped-def]
    """Job ids to cancel at the end of the test, whatever happened."""
    await _quiet(stack, orgs)
    ids: list[str] = []
    yield ids
    async with client(stack, orgs["a"]) as api:
        for job_id in ids:
            await api.post(f"/jobs/{job_id}/cancel")


async def _gpus_in_use(api: httpx.AsyncClient) -> int:
    return sum(1 for j in await _active(api) if j["status"] in ("scheduled", "running"))


# ----------------------------------------------------------------------------- quota and borrowing


async def test_a_quota_holds_an_organization_to_its_nominal_until_it_may_borrow(
    stack, orgs, gpu_type, blocker
):
    org = orgs["a_org"]
    path = f"/admin/quotas/{org}/{gpu_type}"
    async with operator(stack) as op, client(stack, orgs["a"]) as api:
        r = await op.put(path, json={"nominal": 1, "borrowing_limit": 0})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "organization_id": org,
            "gpu_type": gpu_type,
            "nominal": 1,
            "borrowing_limit": 0,
            "lending_limit": None,
        }
        try:
            first = await _submit(api, command="sleep 60", name="within-quota")
            blocker.append(first["id"])
            await wait_status(api, first["id"], {"running"}, timeout=30)
            second = await _submit(api, command="echo borrowed", name="over-quota")
            blocker.append(second["id"])
            waiting = await _pending(api, second["id"], "quota_exhausted")
            message = waiting["pending_reason"]["message"]
            assert "quota" in message and gpu_type in message and "1/1" in message, message
            # Several ticks on a fleet whose other GPU is idle: the quota, not capacity, holds it.
            await asyncio.sleep(3)
            still = (await api.get(f"/jobs/{second['id']}")).json()
            assert still["status"] == "queued" and still["pending_reason"]["code"] == "quota_exhausted"
            assert await _gpus_in_use(api) == 1
            async with client(stack, orgs["b"]) as other:
                assert await _gpus_in_use(other) == 0  # nobody else holds the second GPU

            # Allowed to borrow one: it runs on the idle GPU while the first still runs.
            r = await op.put(path, json={"nominal": 1, "borrowing_limit": 1})
            assert r.status_code == 200, r.text
            done = await wait_status(api, second["id"], ENDED, timeout=30)
            assert done["status"] == "succeeded" and "borrowed" in done["output_tail"]
            assert (await api.get(f"/jobs/{first['id']}")).json()["status"] == "running"
        finally:
            r = await op.delete(path)
            assert r.status_code == 204, r.text

        # The trail: both settings and the removal, with what each replaced.
        r = await op.get("/admin/audit", params={"organization_id": org, "limit": 3})
        assert r.status_code == 200, r.text
        deleted, borrowing, nominal = r.json()["entries"]
        assert [e["method"] for e in (nominal, borrowing, deleted)] == [
            "PolicyService/SetQuota",
            "PolicyService/SetQuota",
            "PolicyService/DeleteQuota",
        ]
        assert {e["actor"] for e in (nominal, borrowing, deleted)} == {"operator"}
        assert nominal["after"] == {"nominal": 1, "borrowing_limit": 0, "lending_limit": None}
        assert borrowing["before"] == nominal["after"] and borrowing["after"]["borrowing_limit"] == 1
        assert deleted["before"] == borrowing["after"] and deleted["after"] is None
        policy = (await op.get("/admin/policy")).json()
        assert not [q for q in policy["quotas"] if q["organization_id"] == org]


# ----------------------------------------------------------------------------- per-user cap


async def test_a_per_user_cap_set_by_the_owner_holds_the_users_second_job(stack, orgs, blocker):
    async with client(stack, orgs["a"]) as api:
        r = await api.put("/organization/user-caps", json={"caps": [{"max_running_jobs": 1}]})
        assert r.status_code == 200, r.text
        assert r.json()["caps"] == [{"user_id": None, "max_running_jobs": 1, "max_gpus": None}]
        lifted_already = False
        try:
            first = await _submit(api, command="sleep 60", name="capped-1")
            blocker.append(first["id"])
            await wait_status(api, first["id"], {"running"}, timeout=30)
            second = await _submit(api, command="echo capped-2", name="capped-2")
            blocker.append(second["id"])
            waiting = await _pending(api, second["id"], "user_cap")
            assert "per-user cap 1 running jobs" in waiting["pending_reason"]["message"]
            await asyncio.sleep(3)
            assert (await api.get(f"/jobs/{second['id']}")).json()["status"] == "queued"
            assert await _gpus_in_use(api) == 1  # the other GPU stays idle

            # Lifted: the job runs.
            r = await api.put("/organization/user-caps", json={"caps": []})
            assert r.status_code == 200 and r.json()["caps"] == []
            lifted_already = True
            done = await wait_status(api, second["id"], ENDED, timeout=30)
            assert done["status"] == "succeeded"
        finally:
            if not lifted_already:
                await api.put("/organization/user-caps", json={"caps": []})

        r = await api.get("/organization/policy-audit", params={"limit": 2})
        assert r.status_code == 200, r.text
        lifted, capped = r.json()["entries"][:2]
        assert (capped["method"], capped["actor"], capped["organization_id"]) == (
            "PolicyService/SetUserCaps",
            "member",
            orgs["a_org"],
        )
        assert capped["actor_user_id"] and capped["actor_api_key_id"]
        assert capped["after"] == [{"user_id": None, "max_running_jobs": 1, "max_gpus": None}]
        assert lifted["before"] == capped["after"] and lifted["after"] == []
    # Another organization's admin sees none of it.
    async with client(stack, orgs["b"]) as other:
        theirs = (await other.get("/organization/policy-audit", params={"limit": 200})).json()["entries"]
        assert all(e["organization_id"] == orgs["b_org"] for e in theirs)


# ----------------------------------------------------------------------------- who may call what


async def _viewer_key(stack, owner_key: str) -> str:  # type: ignore[no-untyped-def]
    """A viewer of the owner's organization, invited and accepted through REST (docs/members.md)."""
    async with client(stack, owner_key) as owner:
        r = await owner.post(
            "/invites", json={"email": f"viewer-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer"}
        )
        assert r.status_code == 201, r.text
    async with client(stack, r.json()["token"]) as invitee:
        accepted = await invitee.post("/invites/accept", json={"name": "Vera"})
        assert accepted.status_code == 201, accepted.text
    return str(accepted.json()["api_key"]["secret"])


async def test_an_org_key_is_no_operator_and_a_viewer_sets_no_caps(stack, orgs, gpu_type):
    org = orgs["a_org"]
    async with client(stack, orgs["a"]) as owner:
        for verb, path, body in (
            ("GET", "/admin/policy", None),
            ("PUT", f"/admin/quotas/{org}/{gpu_type}", {"nominal": 100}),
            ("PUT", f"/admin/fair-shares/{org}", {"weight": 100}),
            ("GET", "/admin/audit", None),
        ):
            problem = _problem(await owner.request(verb, path, json=body), 403)
            assert "operator" in problem["detail"], problem
        restricted = await owner.post("/api-keys", json={"name": "jobs only", "scopes": ["jobs:write"]})
        assert restricted.status_code == 201, restricted.text
        narrow_key = restricted.json()["secret"]
    async with client(stack, "not-the-operator-token") as stranger:
        _problem(await stranger.get("/admin/policy"), 401)
    async with client(stack, narrow_key) as narrow:
        problem = _problem(await narrow.put("/organization/user-caps", json={"caps": []}), 403)
        assert problem["type"].endswith("/insufficient-scope")
    async with client(stack, await _viewer_key(stack, orgs["a"])) as viewer:
        assert (await viewer.get("/jobs")).status_code == 200  # a working key, only not an admin
        _problem(await viewer.put("/organization/user-caps", json={"caps": [{"max_running_jobs": 0}]}), 403)
        _problem(await viewer.get("/organization/user-caps"), 403)
    async with operator(stack) as op:
        entries = (await op.get("/admin/audit", params={"organization_id": org, "limit": 200})).json()[
            "entries"
        ]
        assert not [
            e for e in entries if e["after"] in ({"nominal": 100}, 100)
        ]  # nothing refused was written
        policy = (await op.get("/admin/policy")).json()
        assert not [q for q in policy["quotas"] if q["organization_id"] == org]


async def test_bad_policy_input_is_a_validation_problem(stack, gpu_type):
    async with operator(stack) as op:
        problem = _problem(
            await op.put(f"/admin/quotas/{uuid.uuid4()}/{gpu_type}", json={"nominal": -1}), 422
        )
        assert [e["field"] for e in problem["errors"]] == ["nominal"]
        problem = _problem(await op.put(f"/admin/quotas/not-a-uuid/{gpu_type}", json={"nominal": 1}), 422)
        assert [e["field"] for e in problem["errors"]] == ["organization_id"]
        problem = _problem(await op.put("/admin/policy", json={"half_life_seconds": 1}), 422)
        assert [e["field"] for e in problem["errors"]] == ["half_life_seconds"]


# ----------------------------------------------------------------------------- time limit


async def test_a_job_past_its_time_limit_is_warned_then_ends_timed_out(stack, orgs, blocker):
    # Warned at 4.5 s (90%), stopped at 5 s: the warning event has half a second on the job's end.
    async with client(stack, orgs["a"]) as api:
        job = await _submit(api, command="sleep 30", time_limit_seconds=5, name="limited")
        blocker.append(job["id"])
        assert job["time_limit_seconds"] == 5
        done = await wait_status(api, job["id"], ENDED, timeout=40)
        assert done["status"] == "timed_out", done
        assert "time limit" in (done["error_message"] or ""), done
        tail = done["output_tail"]
        warning = tail.find("[gpufleet] time limit of 5 s: the job is stopped in")
        reached = tail.find("[gpufleet] time limit of 5 s reached")
        assert 0 <= warning < reached, tail  # warned first, then stopped
        history = [(h["status"], h.get("reason") or "") for h in done["history"]]
        assert [s for s, _ in history][-2:] == ["running", "timed_out"], history
        assert "time limit" in history[-1][1]

    # Subscribers learned it too: the scheduler's warning event, once, before the end (the job's events
    # as the tenant's stream replays them; its cost event may be stored anywhere among them).
    async with open_stream(stack, orgs["a"], params={"job_id": job["id"], "from": "start"}) as stream:
        frames = await stream.until(lambda f: f["event"] == "gpufleet.job.timed_out")
    events = [f for f in frames if f["event"].startswith("gpufleet.job.")]
    types = [f["event"] for f in events]
    assert types.count("gpufleet.job.time_limit_warning") == 1, types
    assert types[-2:] == ["gpufleet.job.time_limit_warning", "gpufleet.job.timed_out"], types
    warned = events[-2]["data"]["data"]
    assert (warned["previous_status"], warned["job"]["status"]) == ("running", "running"), warned
    assert warned["reason"].startswith("time limit of 5 s: the job is stopped in"), warned
    assert warned["stops_at"] is not None and warned["job"]["time_limit_seconds"] == 5
