"""Abuse limits on the running stack (docs/limits.md): the operator puts a fresh organization on a tiny
plan over REST; its next submit beyond the rate is a 429 problem with Retry-After and the IETF
RateLimit-Policy/RateLimit headers, and beyond its queued-jobs cap likewise; another organization
submits as before; the changes are in the audit trail.

The test cleans up after itself: its organization's jobs are cancelled and its limits removed (the
tiny plan stays, unused: plans are not deleted)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client, eventually

pytestmark = pytest.mark.e2e

JOB = {"command": "sleep 60", "gpu_count": 1, "hold": True}  # held: it stays queued


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


async def test_a_tiny_plan_answers_429_with_retry_after_and_ratelimit_headers(stack, orgs):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    fresh = await stack.create_organization(f"Limited {tag}", f"owner-{tag}@limited.example", "Lim")
    org_id, key = fresh.organization.id, fresh.api_key.secret
    plan = f"t{tag}"
    submitted: list[str] = []
    async with client(stack, stack.admin_token) as op, client(stack, key) as api:
        try:
            r = await op.put(
                f"/admin/plans/{plan}", json={"max_queued_jobs": 50, "submit_rate": 0.01, "submit_burst": 1}
            )
            assert r.status_code == 200, r.text
            assert r.json() == {"name": plan, "max_queued_jobs": 50, "submit_rate": 0.01, "submit_burst": 1}
            r = await op.put(f"/admin/limits/{org_id}", json={"plan": plan})
            assert r.status_code == 200, r.text
            assert r.json()["effective_plan"] == plan and r.json()["effective"]["submit_burst"] == 1

            r = await api.post("/jobs", json=JOB)
            assert r.status_code == 201, r.text
            submitted.append(r.json()["id"])

            # The bucket (1 token, one more every 100 s) is empty: the next submit is refused.
            r = await api.post("/jobs", json=JOB)
            body = _problem(r, 429)
            assert body["type"].endswith("/too-many-requests") and plan in body["detail"]
            retry = int(r.headers["retry-after"])
            assert 1 <= retry <= 100
            assert r.headers["ratelimit-policy"] == '"submits";q=1;w=100'
            assert re.fullmatch(r'"submits";r=0;t=\d+', r.headers["ratelimit"])

            # Another organization is not slowed by this one's limit.
            async with client(stack, orgs["b"]) as other:
                r = await other.post("/jobs", json=JOB)
                assert r.status_code == 201, r.text
                await other.post(f"/jobs/{r.json()['id']}/cancel")

            # A fast rate but one queued job at most: the held job fills the queue.
            r = await op.put(
                f"/admin/limits/{org_id}",
                json={"plan": plan, "max_queued_jobs": 1, "submit_rate": 100, "submit_burst": 100},
            )
            assert r.status_code == 200, r.text
            r = await api.post("/jobs", json=JOB)
            body = _problem(r, 429)
            assert "cap of 1 queued jobs" in body["detail"]
            assert r.headers["retry-after"] == "10"
            assert r.headers["ratelimit-policy"] == '"queued_jobs";q=1'
            assert r.headers["ratelimit"] == '"queued_jobs";r=0'

            # Cancelled, the job leaves the queue, and there is room again (seen at the limiter's next
            # count, at most a quarter of a second after its last).
            await api.post(f"/jobs/{submitted[0]}/cancel")

            async def room() -> httpx.Response | None:
                r = await api.post("/jobs", json=JOB)
                assert r.status_code in (201, 429), r.text
                return r if r.status_code == 201 else None

            submitted.append((await eventually(room, timeout=10)).json()["id"])

            audit = (await op.get("/admin/audit", params={"organization_id": org_id})).json()["entries"]
            assert [e["method"] for e in audit][:2] == [
                "PolicyService/SetOrganizationLimits",
                "PolicyService/SetOrganizationLimits",
            ]
            assert audit[0]["after"] == {
                "plan": plan,
                "max_queued_jobs": 1,
                "submit_rate": 100.0,
                "submit_burst": 100,
            }
            # An API key is not the operator.
            _problem(await api.put(f"/admin/limits/{org_id}", json={}), 403)
        finally:
            for job_id in submitted:
                await api.post(f"/jobs/{job_id}/cancel")
            r = await op.delete(f"/admin/limits/{org_id}")
            assert r.status_code in (204, 404), r.text
        r = await op.get(f"/admin/limits/{org_id}")
        assert r.status_code == 200 and r.json()["set"] is False


async def test_a_batch_counts_as_its_jobs_and_is_refused_whole(stack):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    fresh = await stack.create_organization(f"Batched {tag}", f"owner-{tag}@batched.example", "Bat")
    org_id, key = fresh.organization.id, fresh.api_key.secret
    plan = f"b{tag}"
    submitted: list[str] = []

    def jobs(count: int) -> dict[str, Any]:
        return {"jobs": [JOB] * count}

    async def listed(api: httpx.AsyncClient) -> list[str]:
        return [j["id"] for j in (await api.get("/jobs", params={"limit": 200})).json()["jobs"]]

    async with client(stack, stack.admin_token) as op, client(stack, key) as api:
        try:
            r = await op.put(
                f"/admin/plans/{plan}", json={"max_queued_jobs": 50, "submit_rate": 0.01, "submit_burst": 5}
            )
            assert r.status_code == 200, r.text
            assert (await op.put(f"/admin/limits/{org_id}", json={"plan": plan})).status_code == 200

            # Six jobs need six tokens of the five: refused whole, saying how many are left.
            r = await api.post("/jobs:batchCreate", json=jobs(6))
            assert "more than this organization's burst of 5" in _problem(r, 429)["detail"]
            assert r.headers["ratelimit-policy"] == '"submits";q=5;w=500'
            assert re.fullmatch(r'"submits";r=5;t=\d+', r.headers["ratelimit"])
            assert await listed(api) == []
            r = await api.post("/jobs:batchCreate", json=jobs(5))
            assert r.status_code == 201, r.text
            submitted += [j["id"] for j in r.json()["jobs"]]
            r = await api.post("/jobs:batchCreate", json=jobs(1))
            assert "retry in" in _problem(r, 429)["detail"]
            assert re.fullmatch(r'"submits";r=0;t=\d+', r.headers["ratelimit"])

            # The queued cap counts each job too: 5 queued of 7, a batch of 3 does not fit, 2 do.
            r = await op.put(
                f"/admin/limits/{org_id}",
                json={"plan": plan, "max_queued_jobs": 7, "submit_rate": 100, "submit_burst": 100},
            )
            assert r.status_code == 200, r.text
            r = await api.post("/jobs:batchCreate", json=jobs(3))
            assert "a batch of 3 jobs does not fit (2 more may queue now)" in _problem(r, 429)["detail"]
            assert r.headers["ratelimit"] == '"queued_jobs";r=2'
            assert sorted(await listed(api)) == sorted(submitted)
            r = await api.post("/jobs:batchCreate", json=jobs(2))
            assert r.status_code == 201, r.text
            submitted += [j["id"] for j in r.json()["jobs"]]
        finally:
            for job_id in submitted:
                await api.post(f"/jobs/{job_id}/cancel")
            r = await op.delete(f"/admin/limits/{org_id}")
            assert r.status_code in (204, 404), r.text
