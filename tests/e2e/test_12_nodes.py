"""GET /v1/nodes and GET /v1/gpus while a job runs: fleet's inventory merged with the scheduler's
allocations (the scheduler alone owns allocation). The owner sees its job on the GPU it holds; another
organization sees the same shared GPU allocated, with no job; once the job ends the GPU is free."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def _gpu_views(api, gpu_id: str) -> tuple[dict, dict]:
    """(the GPU in /v1/gpus, the GPU in /v1/nodes, walking every page)."""
    gpus = (await api.get("/gpus")).json()["gpus"]
    [flat] = [g for g in gpus if g["id"] == gpu_id]
    found, cursor = [], None
    while True:
        r = await api.get("/nodes", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        found += [g for n in page["items"] for g in n["gpus"] if g["id"] == gpu_id]
        if not (cursor := page["next_cursor"]):
            break
    [on_node] = found
    return flat, on_node


async def test_a_running_jobs_gpu_is_allocated_to_its_owner_and_anonymous_to_others(stack, orgs):
    async with client(stack, orgs["a"]) as a, client(stack, orgs["b"]) as b:

        async def registered() -> dict | None:
            nodes = (await a.get("/nodes")).json()
            return nodes if nodes["items"] and len(nodes["items"][0]["gpus"]) >= 1 else None

        nodes = await eventually(registered)  # the agent registers once the stack is up
        assert nodes["next_cursor"] is None
        node = nodes["items"][0]
        assert set(node) == {
            "id",
            "hostname",
            "provider",
            "spot",
            "status",
            "last_heartbeat_at",
            "cpu_cores",
            "ram_mb",
            "labels",
            "gpus",
        }
        assert node["status"] == "online" and node["gpus"]
        assert {g["health"] for g in node["gpus"]} == {"healthy"}

        created = await a.post("/jobs", json={"command": "sleep 6", "gpu_count": 1, "name": "held"})
        assert created.status_code == 201, created.text
        job = await wait_status(a, created.json()["id"], {"running"}, timeout=60)
        [gpu_id] = job["gpu_ids"]

        flat, on_node = await _gpu_views(a, gpu_id)
        assert (flat["status"], flat["in_use"], flat["job_id"]) == ("allocated", True, job["id"])
        assert (on_node["status"], on_node["job_id"], on_node["health"]) == (
            "allocated",
            job["id"],
            "healthy",
        )

        flat_b, on_node_b = await _gpu_views(b, gpu_id)
        assert (flat_b["status"], flat_b["in_use"], flat_b["job_id"]) == ("allocated", True, None)
        assert (on_node_b["status"], on_node_b["job_id"]) == ("allocated", None)
        for path in ("/gpus", "/nodes"):
            assert job["id"] not in (await b.get(path)).text  # nowhere in another tenant's view

        done = await wait_status(a, job["id"], {"succeeded", "failed"}, timeout=60)
        assert done["status"] == "succeeded", done

        async def freed() -> bool:
            views = [*(await _gpu_views(a, gpu_id)), *(await _gpu_views(b, gpu_id))]
            return all(v.get("job_id") is None for v in views) and [v["status"] for v in views] == [
                "available",
                "free",
                "available",
                "free",
            ]

        await eventually(freed, timeout=30)
        assert (await a.get("/nodes", params={"limit": 0})).status_code == 422
