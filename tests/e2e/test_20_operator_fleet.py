"""The operator's whole-fleet view over REST (GET /v1/admin/fleet): every node with its GPUs, and the
job (and organization) holding a GPU; an organization's API key is refused with a 403 problem."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def test_the_operator_sees_the_whole_fleet_and_an_org_key_does_not(stack, orgs):  # type: ignore[no-untyped-def]
    async with client(stack, orgs["a"]) as api, client(stack, stack.admin_token) as operator:
        refused = await api.get("/admin/fleet")
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        async with client(stack, "gpf_not_a_real_key") as stranger:
            assert (await stranger.get("/admin/fleet")).status_code == 401

        r = await api.post("/jobs", json={"name": "operator-view", "command": "sleep 60", "gpu_count": 1})
        assert r.status_code == 201, r.text
        job = await wait_status(api, r.json()["id"], {"running"}, timeout=120)
        try:
            [gpu_id] = job["gpu_ids"]

            async def held() -> dict | None:
                reply = await operator.get("/admin/fleet")
                assert reply.status_code == 200, reply.text
                gpus = {g["id"]: (n, g) for n in reply.json()["nodes"] for g in n["gpus"]}
                found = gpus.get(gpu_id)
                return found if found and found[1]["holder"] else None

            node, gpu = await eventually(held, 60)
            assert node["id"] == job["node_id"] and node["status"] == "online"
            assert gpu["status"] == "allocated"
            assert gpu["holder"] == {"organization_id": orgs["a_org"], "job_id": job["id"]}
        finally:
            await api.post(f"/jobs/{job['id']}/cancel")

        # The other organization's key is refused the same way: no fleet-wide answer for a tenant.
        async with client(stack, orgs["b"]) as other:
            assert (await other.get("/admin/fleet")).status_code == 403
