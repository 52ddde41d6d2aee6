"""The read APIs the pictures need, on the whole system: costs grouped (with running jobs' cost so
far) add up to the recorded costs, and the utilization series shows the GPUs the jobs used."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def _fresh_org(stack) -> str:  # type: ignore[no-untyped-def]
    """An organization of this test's own, so that its sums are only these jobs'."""
    tag = uuid.uuid4().hex[:8]
    created = await stack.create_organization(f"Reads {tag}", f"reads-{tag}@example.com", "Reader")
    return created.api_key.secret


async def _submit(api: httpx.AsyncClient, command: str) -> str:
    r = await api.post("/jobs", json={"command": command, "gpu_count": 1, "gpu_memory_mb": 1024})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _costs(api: httpx.AsyncClient, jobs: int) -> list[dict] | None:
    listed = (await api.get("/costs")).json()["costs"]
    return listed if len(listed) == jobs else None


async def _summary(api: httpx.AsyncClient, group_by: str) -> dict:
    r = await api.get("/costs/summary", params={"group_by": group_by})
    assert r.status_code == 200, r.text
    return r.json()


async def test_grouped_costs_add_up_to_the_recorded_costs_and_series_show_the_gpus(stack) -> None:  # type: ignore[no-untyped-def]
    key = await _fresh_org(stack)
    async with client(stack, key) as api:
        ids = [await _submit(api, "sleep 3; echo one"), await _submit(api, "sleep 3; echo two")]
        jobs = [await wait_status(api, i, {"succeeded", "failed", "cancelled"}, timeout=90) for i in ids]
        assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs
        costs = await eventually(lambda: _costs(api, 2))
        recorded = sum((Decimal(c["total_cost"]) for c in costs), Decimal(0))
        assert recorded > 0

        for group_by in ("gpu_type", "day", "project"):
            s = await _summary(api, group_by)
            assert (s["group_by"], s["currency"], s["include_running"]) == (group_by, "USD", True)
            assert Decimal(s["total"]["cost"]) == recorded, (group_by, s, costs)
            assert sum(Decimal(g["cost"]) for g in s["groups"]) == recorded
            assert Decimal(s["total"]["running_cost"]) == 0 and s["total"]["jobs"] == 2
            held = sum(Decimal(c["held_seconds"]) for c in costs)
            assert abs(Decimal(str(s["total"]["gpu_seconds"])) - held) < Decimal("0.001")
        by_type = await _summary(api, "gpu_type")
        assert {g["key"] for g in by_type["groups"]} == {
            line["gpu_type"] for c in costs for line in c["lines"]
        }
        assert [g["key"] for g in (await _summary(api, "project"))["groups"]] == [""]

        used = {gpu for j in jobs for gpu in j["gpu_ids"]}

        async def series() -> dict | None:
            r = await api.get("/utilization/series")
            assert r.status_code == 200, r.text
            body = r.json()
            return body if {x["gpu_id"] for x in body["series"]} == used else None

        body = await eventually(series, timeout=30)
        assert body["step_seconds"] == 10 and body["aggregate"]["points"]
        for gpu_series in body["series"]:
            assert gpu_series["points"] and all(0 <= p["utilization"] <= 1 for p in gpu_series["points"])
        one = sorted(used)[0]
        only = (await api.get("/utilization/series", params={"gpu_id": one, "step": 60})).json()
        assert [x["gpu_id"] for x in only["series"]] == [one] and only["step_seconds"] == 60

        too_fine = await api.get("/utilization/series", params={"step": 1})  # 3600 points in the hour
        assert too_fine.status_code == 422 and too_fine.json()["errors"][0]["field"] == "step"
        bad_group = await api.get("/costs/summary", params={"group_by": "week"})
        assert bad_group.status_code == 422 and bad_group.json()["errors"][0]["field"] == "group_by"

    # Another organization sees none of it.
    async with client(stack, await _fresh_org(stack)) as other:
        s = await _summary(other, "gpu_type")
        assert s["groups"] == [] and Decimal(s["total"]["cost"]) == 0
        assert (await other.get("/utilization/series")).json()["series"] == []


async def test_a_running_job_costs_so_far_and_then_what_it_was_billed(stack) -> None:  # type: ignore[no-untyped-def]
    key = await _fresh_org(stack)
    async with client(stack, key) as api:
        job_id = await _submit(api, "sleep 60")
        await wait_status(api, job_id, {"running"}, timeout=60)

        async def running() -> dict | None:
            s = await _summary(api, "gpu_type")
            return s if Decimal(s["total"]["running_cost"]) > 0 else None

        s = await eventually(running, timeout=30)
        assert Decimal(s["total"]["cost"]) == 0 and s["total"]["jobs"] == 1
        without = (
            await api.get("/costs/summary", params={"group_by": "day", "include_running": "false"})
        ).json()
        assert without["groups"] == [] and Decimal(without["total"]["running_cost"]) == 0

        assert (await api.post(f"/jobs/{job_id}/cancel")).status_code == 200
        [cost] = await eventually(lambda: _costs(api, 1))
        ended = await _summary(api, "gpu_type")
        assert Decimal(ended["total"]["running_cost"]) == 0
        assert Decimal(ended["total"]["cost"]) == Decimal(cost["total_cost"]) > 0
