"""Projects in scheduling on the running stack, through REST (docs/projects.md): inside one organization
with two projects, the project below its share is served before a higher-priority flood from the other;
a per-project GPU cap holds a job with reason project_cap (audited); a project-bound key sees and
submits only into its project; an archived project takes no new jobs. The stack's agent has 2 GPUs."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import client, eventually, get_job, quiet, submit, wait_pending, wait_status

pytestmark = pytest.mark.e2e

LONG = "sleep 120"


async def _project(api: httpx.AsyncClient, name: str) -> str:
    r = await api.post("/projects", json={"name": f"{name} {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _cancel_all(api: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        await api.post(f"/jobs/{job['id']}/cancel")


@pytest.fixture(scope="module")
async def initech(stack, orgs) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An organization of its own, so that fair share between organizations plays no part."""
    await quiet(stack, orgs)
    created = await stack.create_organization(
        "Initech", f"peter-{uuid.uuid4().hex[:6]}@initech.example", "Peter"
    )
    return {"key": created.api_key.secret, "org": created.organization.id}


async def test_the_project_below_its_share_goes_first_against_a_higher_priority_flood(stack, initech) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, initech["key"]) as owner:
        flood_project, small_project = await _project(owner, "flood"), await _project(owner, "small")
        flood = [
            await submit(owner, command=LONG, priority=100, project_id=flood_project, name=f"flood-{i}")
            for i in range(4)
        ]
        assert {j["project_id"] for j in flood} == {flood_project}
        # the flood takes both GPUs; then a low-priority job of the other project arrives
        running = [await wait_status(owner, j["id"], {"running"}) for j in flood[:2]]
        small = await submit(owner, command=LONG, priority=0, project_id=small_project, name="small")
        await wait_pending(owner, small["id"], "no_capacity")
        try:
            # a GPU frees: it goes to the project below its share, not to the flood's priority-100 jobs
            await owner.post(f"/jobs/{running[0]['id']}/cancel")
            placed = await wait_status(owner, small["id"], {"scheduled", "running"})
            assert placed["project_id"] == small_project
            for waiting in flood[2:]:
                assert (await get_job(owner, waiting["id"]))["status"] == "queued"
            listed = (await owner.get("/jobs", params={"project_id": small_project})).json()["jobs"]
            assert [j["id"] for j in listed] == [small["id"]]
        finally:
            await _cancel_all(owner, [*flood, small])


async def test_a_project_cap_holds_a_job_with_its_reason(stack, orgs, initech) -> None:  # type: ignore[no-untyped-def]
    await quiet(stack, orgs)
    async with client(stack, initech["key"]) as owner:

        async def idle() -> bool:
            jobs = (await owner.get("/jobs", params={"status": "running"})).json()["jobs"]
            jobs += (await owner.get("/jobs", params={"status": "scheduled"})).json()["jobs"]
            return not jobs

        await eventually(idle, timeout=60)
        capped = await _project(owner, "capped")
        r = await owner.put(
            "/organization/project-policy", json={"policies": [{"project_id": capped, "max_gpus": 1}]}
        )
        assert r.status_code == 200, r.text
        assert r.json()["policies"] == [
            {"project_id": capped, "weight": None, "max_running_jobs": None, "max_gpus": 1}
        ]
        assert (await owner.get("/organization/project-policy")).json() == r.json()
        first = await submit(owner, command=LONG, project_id=capped)
        second = await submit(owner, command=LONG, project_id=capped)
        try:
            await wait_status(owner, first["id"], {"running"})
            waiting = await wait_pending(owner, second["id"], "project_cap")
            assert "cap of 1 GPUs" in waiting["pending_reason"]["message"]
            audit = (await owner.get("/organization/policy-audit")).json()["entries"]
            assert audit[0]["method"] == "PolicyService/SetProjectPolicies"
            # lifting the cap lets it run (the second GPU is free)
            r = await owner.put("/organization/project-policy", json={"policies": []})
            assert r.status_code == 200, r.text
            await wait_status(owner, second["id"], {"scheduled", "running"})
        finally:
            await _cancel_all(owner, [first, second])


async def test_a_project_bound_key_sees_and_submits_only_into_its_project(stack, orgs, initech) -> None:  # type: ignore[no-untyped-def]
    async with client(stack, initech["key"]) as owner:
        mine, theirs = await _project(owner, "mine"), await _project(owner, "theirs")
        other_job = await submit(owner, command="true", project_id=theirs, hold=True)
        loose_job = await submit(owner, command="true", hold=True)
        r = await owner.post("/api-keys", json={"name": "bound", "project_id": mine})
        assert r.status_code == 201, r.text
        bound_key = r.json()["secret"]
        try:
            async with client(stack, bound_key) as bound:
                job = await submit(bound, command="true", hold=True)  # lands in its project
                assert job["project_id"] == mine
                r = await bound.post("/jobs", json={"command": "true", "gpu_count": 1, "project_id": theirs})
                assert r.status_code == 403, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                listed = (await bound.get("/jobs", params={"limit": 200})).json()["jobs"]
                assert {j["project_id"] for j in listed} == {mine}
                assert (await bound.get("/jobs", params={"project_id": theirs})).json()["jobs"] == []
                for hidden in (other_job, loose_job):
                    for answer in (
                        await bound.get(f"/jobs/{hidden['id']}"),
                        await bound.post(f"/jobs/{hidden['id']}/cancel"),
                    ):
                        assert answer.status_code == 404, answer.text
                        missing = await bound.get(f"/jobs/{uuid.uuid4()}")
                        assert answer.json()["type"] == missing.json()["type"]
                await bound.post(f"/jobs/{job['id']}/cancel")
            # another organization's key: the project is not there
            async with client(stack, orgs["b"]) as other:
                r = await other.post("/jobs", json={"command": "true", "gpu_count": 1, "project_id": mine})
                assert r.status_code == 404, r.text
            # an archived project keeps its jobs readable but takes no new ones (the scheduler holds
            # identity's answer about a project for up to 2 s)
            assert (await owner.delete(f"/projects/{theirs}")).status_code in (200, 204)

            async def refused() -> dict[str, Any] | None:
                r = await owner.post("/jobs", json={"command": "true", "gpu_count": 1, "project_id": theirs})
                if r.status_code == 201:
                    await owner.post(f"/jobs/{r.json()['id']}/cancel")
                    return None
                assert r.status_code == 422, r.text
                return dict(r.json())

            assert (await eventually(refused, timeout=10))["type"].endswith("/project-archived")
            assert (await get_job(owner, other_job["id"]))["project_id"] == theirs
        finally:
            await _cancel_all(owner, [other_job, loose_job])
