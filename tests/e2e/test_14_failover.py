"""Leader failover: two scheduler replicas, the lease holder SIGKILLed while a stream of jobs runs.

The standby takes the lease over (a larger fencing token) and carries on from the database: every
job ends exactly once and succeeds, none runs twice, no GPU is held by two jobs at once, and each job
is billed once. The gateway and the agent dial both replicas (``ipv4:a,b``, pick_first), so the kill
also takes away the replica they were talking to when it was the first one; requests in flight then
fail and are sent again (submits with an idempotency key, so a retry never makes a second job).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from itertools import combinations

import httpx
import pytest

from shared.devstack import Stack

from .helpers import client, eventually
from .multinode import get_ok, lease, own_stack, process_of

NAME = "failover"
JOBS_BEFORE, JOBS_AFTER = 10, 10
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@pytest.fixture(scope="module")
async def failover(e2e_postgres, state_dir):
    async with own_stack(e2e_postgres, state_dir, NAME, scheduler_replicas=2) as (stack, key):
        yield stack, key


async def _submit(api: httpx.AsyncClient, i: int) -> str:
    """Submit job ``i``, again and again while the scheduler is away: one job whatever the retries."""
    body = {"command": f"sleep 0.4; echo job-{i}", "gpu_count": 1, "name": f"stream-{i}"}

    async def attempt() -> str | None:
        try:
            r = await api.post("/jobs", json=body, headers={"Idempotency-Key": f"stream-{i}"})
        except httpx.TransportError:
            return None
        return r.json()["id"] if r.status_code in (200, 201) else None

    return await eventually(attempt, timeout=90, every=0.5)


async def _jobs(api: httpx.AsyncClient, ids: list[str]) -> dict[str, dict]:
    out = {}
    for job_id in ids:
        out[job_id] = await eventually(lambda j=job_id: get_ok(api, f"/jobs/{j}"), timeout=60)
    return out


async def test_killing_the_leader_mid_run_loses_no_job_and_runs_none_twice(failover, e2e_postgres):
    stack: Stack
    stack, key = failover
    database = f"gpufleet_{NAME}"

    async def leader() -> tuple[str, int] | None:
        holder, token, live = await lease(e2e_postgres, database)
        name = process_of(stack, holder) if live else None
        return (name, token) if name in stack.scheduler_names else None

    async with client(stack, key) as api:
        gpus = await eventually(lambda: _available(api), timeout=60)
        assert len(gpus) == 2
        first_leader, first_token = await eventually(leader, timeout=30)
        ids = list(await asyncio.gather(*(_submit(api, i) for i in range(JOBS_BEFORE))))

        async def some_ran() -> bool:
            jobs = [await get_ok(api, f"/jobs/{j}") for j in ids]
            return sum(1 for j in jobs if j and j["status"] in {"running", "succeeded"}) >= 2

        await eventually(some_ran, timeout=60)
        stack.processes[first_leader].kill()  # SIGKILL: no hand-over, the lease has to expire
        killed_at = time.monotonic()
        ids += await asyncio.gather(*(_submit(api, i) for i in range(JOBS_BEFORE, JOBS_BEFORE + JOBS_AFTER)))

        async def taken_over() -> tuple[str, int] | None:
            now = await leader()
            return now if now is not None and now[0] != first_leader else None

        new_leader, new_token = await eventually(taken_over, timeout=60)
        assert new_token > first_token and stack.processes[new_leader].alive()
        took = time.monotonic() - killed_at  # printed, not asserted: the lease TTL (5 s) bounds it
        print(f"killed the leader {first_leader} (token {first_token}); {new_leader} leads after {took:.1f}s")

        async def all_ended() -> dict[str, dict] | None:
            jobs = await _jobs(api, ids)
            return jobs if all(j["status"] in TERMINAL for j in jobs.values()) else None

        jobs = await eventually(all_ended, timeout=120, every=1)
        assert len(set(ids)) == JOBS_BEFORE + JOBS_AFTER  # no retry made a second job
        for job in jobs.values():
            assert job["status"] == "succeeded", job
            assert job["attempt"] == 1, job  # never requeued: nothing was lost
            states = Counter(h["status"] for h in job["history"])
            assert states["scheduled"] == 1 and states["succeeded"] == 1, job["history"]  # run once
            assert sum(states[s] for s in TERMINAL) == 1
            assert len(job["gpu_ids"]) == 1 and job["gpu_ids"][0] in gpus
        _no_gpu_double_booked(list(jobs.values()))

        async def billed() -> dict[str, list[dict]] | None:
            costs = await _costs(api)
            return costs if costs is not None and set(ids) <= set(costs) else None

        costs = await eventually(billed, timeout=60, every=1)
        for job_id in ids:
            [record] = costs[job_id]  # billed once
            assert [a["attempt"] for a in record["attempts"]] == [1]
            assert len(record["lines"]) == 1 and record["lines"][0]["gpu_id"] == jobs[job_id]["gpu_ids"][0]


def _no_gpu_double_booked(jobs: list[dict]) -> None:
    """No two jobs overlap on a GPU between their scheduled_at and finished_at."""
    for a, b in combinations(jobs, 2):
        if not set(a["gpu_ids"]) & set(b["gpu_ids"]):
            continue
        a0, a1 = _ts(a["scheduled_at"]), _ts(a["finished_at"])
        b0, b1 = _ts(b["scheduled_at"]), _ts(b["finished_at"])
        assert a1 <= b0 or b1 <= a0, (a["id"], a0, a1, b["id"], b0, b1)


def _ts(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


async def _available(api: httpx.AsyncClient) -> set[str] | None:
    body = await get_ok(api, "/gpus")
    gpus = (body or {}).get("gpus", [])
    return {g["id"] for g in gpus} if gpus and all(g["status"] == "available" for g in gpus) else None


async def _costs(api: httpx.AsyncClient) -> dict[str, list[dict]] | None:
    """Every cost record, by job (every page)."""
    out: dict[str, list[dict]] = {}
    cursor = None
    while True:
        body = await get_ok(api, "/costs", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        if body is None:
            return None
        for record in body["costs"]:
            out.setdefault(record["job_id"], []).append(record)
        cursor = body["next_cursor"]
        if not cursor:
            return out
