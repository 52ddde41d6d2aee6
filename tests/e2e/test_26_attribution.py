"""Attribution end to end (issue 9, docs/attribution.md): the samples of the GPU that ran an
organization's job are that organization's because the scheduler's allocation says so (monitoring learns
it from the job topic); they lie within the job's hold, and another organization sees none of them, nor
the job's output."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def _fresh_org(stack) -> str:  # type: ignore[no-untyped-def]
    """An organization of this test's own: every sample it sees is of this test's job."""
    tag = uuid.uuid4().hex[:8]
    created = await stack.create_organization(f"Attribution {tag}", f"attr-{tag}@example.com", "Owner")
    return created.api_key.secret


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _gpu(api: httpx.AsyncClient, gpu_id: str) -> dict | None:
    r = await api.get("/utilization", params={"hours": 1})
    assert r.status_code == 200, r.text
    return next((g for g in r.json()["gpus"] if g["gpu_id"] == gpu_id), None)


async def test_a_jobs_gpu_samples_are_its_organizations_alone(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    mine = await _fresh_org(stack)
    before = await _counters(stack)  # the stack is shared with the rest of the suite: count this job's only
    async with client(stack, mine) as api:
        r = await api.post("/jobs", json={"command": "sleep 4; echo attributed", "gpu_count": 1})
        assert r.status_code == 201, r.text
        job = await wait_status(api, str(r.json()["id"]), {"succeeded", "failed", "cancelled"}, timeout=90)
        assert job["status"] == "succeeded", job
        (gpu_id,) = job["gpu_ids"]

        async def settled() -> dict | None:
            # Only samples the job's hold covers count as the organization's. Monitoring learns the
            # hold's end from the job topic, after the scheduler recorded it: a sample stored in
            # between is the job's until that event re-attributes it, so wait for it (not a sleep).
            util = await _gpu(api, gpu_id)
            if util is None or _at(util["last_sample_at"]) >= _at(job["finished_at"]):
                return None
            return util

        util = await eventually(settled, timeout=30)
        assert util["samples"] >= 1
        assert _at(job["scheduled_at"]) <= _at(util["first_sample_at"])
        assert _at(util["last_sample_at"]) < _at(job["finished_at"])
        every = (await api.get("/utilization", params={"hours": 1})).json()["gpus"]
        assert [g["gpu_id"] for g in every] == [gpu_id]  # this organization ran one job on one GPU

        async def complete_logs() -> bytes | None:
            r = await api.get(f"/jobs/{job['id']}/logs")
            assert r.status_code == 200, r.text
            return r.content if r.headers["GpuFleet-Output-Complete"] == "true" else None

        # The chunks came from the node the job was placed on: kept, and its end of output with them.
        assert await eventually(complete_logs, timeout=30) == b"attributed\n"

    async with client(stack, orgs["b"]) as other:
        start, end = _at(job["scheduled_at"]), _at(job["finished_at"])
        # (B may run jobs of its own in a whole-suite run: none of its samples lies in A's hold.)
        body = (await other.get("/utilization/series", params={"gpu_id": gpu_id})).json()
        step = timedelta(seconds=body["step_seconds"])
        inside = [
            p
            for s in body["series"]
            for p in s["points"]
            if start <= _at(p["t"]) and _at(p["t"]) + step <= end
        ]
        assert inside == []
        assert (await other.get(f"/jobs/{job['id']}/logs")).status_code == 404

    # Monitoring judged the samples and chunks by the allocation: the honest agent's claims agreed with
    # it, and its chunks named the node the job ran on (none refused).
    assert await _counters(stack) == before


_COUNTERS = (
    "gpufleet_monitoring_samples_claim_disputed_total",
    "gpufleet_monitoring_output_refused_chunks_total",
)


async def _counters(stack) -> dict[str, float]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(stack.metrics_url("monitoring"))).text
    return {name: _metric(text, name) for name in _COUNTERS}


def _metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} is not exported"
    return values[0]
