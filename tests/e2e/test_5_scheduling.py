"""The scheduler engine on the running stack (one agent, 2 simulated GPUs), through REST and the job
topic: admission at submit, hold / release, re-prioritising, "why pending", fair share between the two
organizations, a blocked flood that does not delay another tenant, and a job requeued after its agent
died, billed once.

Each test starts from a quiet fleet (no job of either organization active) so that what it measures is
its own doing. Durations are short ``sleep`` jobs; every timing assertion compares two things the
scheduler decided (who got the GPU first), not a wall-clock budget, except where the brief is "not
delayed" (then the bound is seconds against a blocker that runs for much longer).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.contracts import jobs as contract
from shared.contracts import topics
from shared.events import header_map
from tests.e2e.helpers import client, eventually, wait_status
from tests.e2e.helpers import get_job as _get
from tests.e2e.helpers import quiet as _quiet
from tests.e2e.helpers import submit as _submit
from tests.e2e.helpers import wait_pending as _pending

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _occupy(api: httpx.AsyncClient, *seconds: int) -> list[dict[str, Any]]:
    blockers = [await _submit(api, command=f"sleep {s}", name="blocker") for s in seconds]
    for b in blockers:
        await wait_status(api, b["id"], {"running"}, timeout=30)
    return blockers


@pytest.fixture(scope="module", autouse=True)
async def fleet_known(stack, orgs) -> None:  # type: ignore[no-untyped-def]
    """Admission lets everything in while the scheduler knows no node yet (the fleet may still be
    registering); these tests start once the agent's 2 GPUs are registered and a 2-GPU job has run."""
    async with client(stack, orgs["b"]) as api:

        async def two_gpus() -> bool:
            return len((await api.get("/gpus")).json()["gpus"]) == 2

        await eventually(two_gpus, timeout=120)
        job = await _submit(api, command="echo fits", gpu_count=2)
        assert (await wait_status(api, job["id"], ENDED, timeout=60))["status"] == "succeeded"


# ----------------------------------------------------------------------------- admission


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"gpu_count": 4}, "gpu_count", "4 GPUs"),
        ({"gpu_count": 1, "gpu_memory_mb": 1_000_000}, "gpu_memory_mb", "memory"),
        ({"gpu_count": 1, "nodes": 2}, "nodes", "2 nodes"),
        # the stack's agent runs no container runtime: nothing here could run an image
        ({"gpu_count": 1, "image": "docker.io/library/busybox:1.36"}, "image", "container runtime"),
    ],
)
async def test_a_job_no_node_could_ever_run_is_refused_at_submit(stack, orgs, body, field, words):
    async with client(stack, orgs["b"]) as api:
        before = (await api.get("/jobs", params={"limit": 200})).json()["jobs"]
        r = await api.post("/jobs", json={"command": "echo never", **body})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"].endswith("/validation-error")
        assert "could ever run this job" in problem["detail"] and words in problem["detail"], problem
        assert [e["field"] for e in problem["errors"]] == [field]
        # Refused: nothing was queued. (The fixture's 2-GPU job, the largest this fleet could hold, ran.)
        assert (await api.get("/jobs", params={"limit": 200})).json()["jobs"] == before


async def test_a_batch_is_all_or_nothing_and_each_of_its_jobs_runs_to_success(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as api:
        before = (await api.get("/jobs", params={"limit": 200})).json()["jobs"]
        bad = [{"command": "echo fine", "gpu_count": 1}, {"command": "echo never", "gpu_count": 4}]
        r = await api.post("/jobs:batchCreate", json={"jobs": bad})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert [e["field"] for e in problem["errors"]] == ["jobs[1].gpu_count"]
        assert problem["detail"].startswith("jobs[1]: no node of this fleet could ever run this job")
        assert (await api.get("/jobs", params={"limit": 200})).json()["jobs"] == before  # not even job 0

        body = {
            "jobs": [{"command": f"echo batch-{i}", "gpu_count": 1, "name": f"batch-{i}"} for i in range(20)]
        }
        key = {"Idempotency-Key": f"array-{uuid.uuid4().hex}"}
        r = await api.post("/jobs:batchCreate", json=body, headers=key)
        assert r.status_code == 201, r.text
        jobs = r.json()["jobs"]
        assert [j["name"] for j in jobs] == [f"batch-{i}" for i in range(20)]
        retry = await api.post("/jobs:batchCreate", json=body, headers=key)
        assert retry.status_code == 201 and [j["id"] for j in retry.json()["jobs"]] == [j["id"] for j in jobs]

        done = [await wait_status(api, j["id"], ENDED, timeout=180) for j in jobs]
        assert [(d["status"], d["exit_code"]) for d in done] == [("succeeded", 0)] * 20
        assert all(f"batch-{i}" in d["output_tail"] for i, d in enumerate(done))
        # One organization, one user, one priority: the batch is placed in its own order.
        placed = [_dt(d["scheduled_at"]) for d in done]
        assert placed == sorted(placed)


# ----------------------------------------------------------------------------- hold / release / priority


async def test_a_held_job_waits_on_an_idle_fleet_and_runs_once_released(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as api:
        job = await _submit(api, command="echo held-ran", hold=True)
        assert job["held"] is True and job["status"] == "queued"
        assert job["pending_reason"]["code"] == "held"
        # Several scheduling ticks with both GPUs idle: a job that is not really held runs in about one.
        await asyncio.sleep(4)
        still = await _get(api, job["id"])
        assert (still["status"], still["held"], still["pending_reason"]["code"]) == ("queued", True, "held")
        assert still["scheduled_at"] is None and still["placements"] == []

        r = await api.post(f"/jobs/{job['id']}/release")
        assert r.status_code == 200, r.text
        assert r.json()["held"] is False
        done = await wait_status(api, job["id"], ENDED, timeout=30)
        assert done["status"] == "succeeded" and "held-ran" in done["output_tail"]
        assert done["pending_reason"] is None and done["queue_position"] is None

        # Hold, release and priority apply to queued jobs only.
        for verb, path, body in (
            ("POST", "/hold", None),
            ("POST", "/release", None),
            ("PATCH", "", {"priority": 70}),
        ):
            r = await api.request(verb, f"/jobs/{job['id']}{path}", json=body)
            assert r.status_code == 409, r.text
            assert r.json()["type"].endswith("/invalid-state")

        # A queued job can be held after submit too, and released again.
        later = await _submit(api, command="echo later", hold=True)
        assert (await api.post(f"/jobs/{later['id']}/release")).status_code == 200
        assert (await wait_status(api, later["id"], ENDED, timeout=30))["status"] == "succeeded"


async def test_another_organizations_job_is_not_found_exactly_like_a_missing_one(stack, orgs):
    async with client(stack, orgs["a"]) as owner:
        job = await _submit(owner, command="echo mine", hold=True)
    try:
        async with client(stack, orgs["b"]) as other:
            for verb, path, body in (
                ("POST", "/hold", None),
                ("POST", "/release", None),
                ("PATCH", "", {"priority": 70}),
            ):
                theirs = await other.request(verb, f"/jobs/{job['id']}{path}", json=body)
                missing = await other.request(verb, f"/jobs/{uuid.uuid4()}{path}", json=body)
                assert theirs.status_code == missing.status_code == 404, theirs.text
                keep = ("type", "title", "status", "detail")
                assert {k: theirs.json()[k] for k in keep} == {k: missing.json()[k] for k in keep}
        async with client(stack, orgs["a"]) as owner:
            untouched = await _get(owner, job["id"])
            assert untouched["held"] is True and untouched["priority"] == 50
    finally:
        async with client(stack, orgs["a"]) as owner:
            await owner.post(f"/jobs/{job['id']}/cancel")


async def test_raising_a_queued_jobs_priority_lets_it_go_first(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as api:
        # One GPU frees at about 3 s, the other at about 8 s: whoever is first in line takes the first.
        await _occupy(api, 3, 8)
        older = await _submit(api, command="sleep 1", name="older")
        newer = await _submit(api, command="sleep 1", name="newer")
        await _pending(api, newer["id"], "no_capacity")
        assert (await _get(api, older["id"]))["queue_position"] == 1

        bad = await api.patch(f"/jobs/{newer['id']}", json={"priority": 101})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "priority", bad.text

        r = await api.patch(f"/jobs/{newer['id']}", json={"priority": 90})
        assert r.status_code == 200, r.text
        assert r.json()["priority"] == 90 and r.json()["queue_position"] == 1
        assert (await _get(api, older["id"]))["queue_position"] == 2

        done_newer = await wait_status(api, newer["id"], ENDED, timeout=60)
        done_older = await wait_status(api, older["id"], ENDED, timeout=60)
        assert _dt(done_newer["scheduled_at"]) < _dt(done_older["scheduled_at"]), (done_newer, done_older)


# ----------------------------------------------------------------------------- why pending


async def test_why_pending_when_every_gpu_is_busy(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as api:
        blockers = await _occupy(api, 6, 6)
        waiting = await _submit(api, command="echo third")
        job = await _pending(api, waiting["id"], "no_capacity")
        assert "free GPU" in job["pending_reason"]["message"], job["pending_reason"]
        assert job["queue_position"] == 1
        # The list shows the same answer as the job itself.
        listed = (await api.get("/jobs", params={"status": "queued"})).json()["jobs"]
        assert [(j["id"], j["pending_reason"]["code"], j["queue_position"]) for j in listed] == [
            (waiting["id"], "no_capacity", 1)
        ]
        # It runs once a blocker ends, and its answer is gone.
        done = await wait_status(api, waiting["id"], ENDED, timeout=60)
        assert done["status"] == "succeeded" and done["pending_reason"] is None
        first_free = min([_dt((await _get(api, b["id"]))["finished_at"]) for b in blockers])
        assert _dt(done["scheduled_at"]) >= first_free


# ----------------------------------------------------------------------------- fair share


async def test_an_organization_below_its_share_is_served_before_a_higher_priority_flood(stack, orgs):
    """A has run jobs all along (every earlier test) and holds both GPUs now; B has run nearly nothing.
    B's job at priority 0, submitted after A's six at priority 100, takes the first GPU that frees."""
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as a, client(stack, orgs["b"]) as b:
        flood = [await _submit(a, command="sleep 2", priority=100, name=f"a-{i}") for i in range(6)]

        async def two_running() -> list[dict[str, Any]] | None:
            jobs = [await _get(a, j["id"]) for j in flood]
            running = [j for j in jobs if j["status"] in ("scheduled", "running")]
            return jobs if len(running) == 2 else None

        at_b_submit = await eventually(two_running, timeout=30)
        b_job = await _submit(b, command="sleep 1", priority=0, name="b-small")
        waiting = [j["id"] for j in at_b_submit if j["status"] == "queued"]
        assert len(waiting) == 4

        b_done = await wait_status(b, b_job["id"], ENDED, timeout=60)
        assert b_done["status"] == "succeeded"
        a_done = [await wait_status(a, j, ENDED, timeout=60) for j in waiting]
        b_at = _dt(b_done["scheduled_at"])
        before_b = [j for j in a_done if _dt(j["scheduled_at"]) < b_at]
        # Not one of A's waiting jobs went first; at most one shared B's cycle (both GPUs freed at once).
        assert before_b == [], [(j["name"], j["scheduled_at"]) for j in a_done] + [b_done["scheduled_at"]]
        assert sum(_dt(j["scheduled_at"]) == b_at for j in a_done) <= 1


async def test_a_flood_of_blocked_two_gpu_jobs_does_not_delay_another_tenants_small_job(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as a, client(stack, orgs["b"]) as b:
        blocker = (await _occupy(a, 12))[0]  # one GPU busy for a long while, one free
        flood = [await _submit(a, command="echo big", gpu_count=2, priority=100) for _ in range(5)]
        try:
            for j in flood:
                await _pending(a, j["id"], "no_capacity")
            small = await _submit(b, command="echo b-not-delayed", priority=0)
            done = await wait_status(b, small["id"], ENDED, timeout=10)
            assert done["status"] == "succeeded"
            # It ran on the free GPU while A's blocker still held the other and A's flood still waited.
            assert (await _get(a, blocker["id"]))["status"] == "running"
            for j in flood:
                job = await _get(a, j["id"])
                assert job["status"] == "queued" and job["pending_reason"]["code"] == "no_capacity", job
                assert "2 free GPUs" in job["pending_reason"]["message"]
        finally:
            for j in [*flood, blocker]:
                await a.post(f"/jobs/{j['id']}/cancel")


# ----------------------------------------------------------------------------- requeue


def _supervisor_pid(stack, job_id: str) -> int:  # type: ignore[no-untyped-def]
    # The agent's control folder for the job (services/agent/adapters/processes.py): shims/<id>/shim.pid.
    # "<pid>" or, for a supervisor forked by the fork server, "<pid> <start time>".
    return int((Path(stack.state_dir) / "agent" / "shims" / job_id / "shim.pid").read_text().split()[0])


async def _job_topic(bootstrap: str) -> list[Any]:
    consumer = AIOKafkaConsumer(topics.JOBS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):  # until a fetch finds nothing more
            records += [r for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


async def test_a_job_lost_with_its_agent_is_requeued_and_billed_once(stack, orgs):
    await _quiet(stack, orgs)
    async with client(stack, orgs["a"]) as api:
        gpus = {g["id"]: g for g in (await api.get("/gpus")).json()["gpus"]}
        job = await _submit(api, command="sleep 4; echo attempt-done", name="requeued")
        await wait_status(api, job["id"], {"running"}, timeout=30)
        first = await _get(api, job["id"])
        assert first["attempt"] == 1
        # A restarted agent takes back jobs whose supervisors live on; with the supervisor killed too the
        # job is really lost, as when a node reboots.
        supervisor = _supervisor_pid(stack, job["id"])
        stack.processes["agent"].kill()
        os.kill(supervisor, signal.SIGKILL)
        stack.processes["agent"].start()

        try:
            done = await wait_status(api, job["id"], ENDED, timeout=90)
        except AssertionError as exc:
            now = await _get(api, job["id"])
            raise AssertionError(
                f"{exc}\njob: {now}\nagent log:\n{stack.processes['agent'].log_tail(40)}"
            ) from None
        assert done["status"] == "succeeded" and "attempt-done" in done["output_tail"], done
        assert done["attempt"] == 2
        requeues = [
            h for h in done["history"] if h["status"] == "queued" and "requeued" in (h["reason"] or "")
        ]
        assert len(requeues) == 1 and "lost" in requeues[0]["reason"], done["history"]

        # The requeued event tells billing what the lost attempt held. Read with a fresh consumer from the
        # start: the package's long-lived tap keeps its positions across the broker restart of an earlier
        # test and so misses the start of the replayed log (what the services' runtime guards against).
        # Delivery is at least once (a relay that re-sends after a failed acknowledgement, a replay), so
        # the same event may sit on the topic twice; two different requeued events would be a bug.
        async def requeued_events() -> list[contract.JobEventV1]:
            by_id = {
                header_map(r.headers).get("ce_id"): contract.JobEventV1.model_validate(json.loads(r.value))
                for r in await _job_topic(stack.kafka_bootstrap)
                if r.key
                and r.key.decode() == job["id"]
                and header_map(r.headers).get("ce_type") == contract.JOB_REQUEUED
            }
            return list(by_id.values())

        [event] = await eventually(requeued_events, timeout=30)
        ended = event.ended_attempt
        assert ended is not None and ended.attempt == 1 and event.job.attempt == 2
        assert [str(a.gpu_id) for a in ended.allocation] == first["gpu_ids"]
        assert ended.scheduled_at == _dt(first["scheduled_at"])
        assert ended.released_at is not None and ended.released_at >= ended.scheduled_at

        # Billed once: the lost attempt is recorded and credited in full, the second one charged.
        async def costed() -> dict[str, Any] | None:
            r = await api.get(f"/jobs/{job['id']}/cost")
            body = r.json() if r.status_code == 200 else None
            return body if body and len(body["attempts"]) == 2 else None

        cost = await eventually(costed, timeout=60)
        by_attempt = {a["attempt"]: a for a in cost["attempts"]}
        lost, ran = by_attempt[1], by_attempt[2]
        assert lost["outcome"] == "requeued" and Decimal(lost["credit"]) == Decimal(lost["gross_cost"]) > 0
        assert Decimal(lost["net_cost"]) == 0
        assert ran["outcome"] == "succeeded" and Decimal(ran["credit"]) == 0
        assert Decimal(cost["total_cost"]) == Decimal(ran["net_cost"])
        assert Decimal(cost["credit"]) == Decimal(lost["credit"])
        price = Decimal(gpus[done["gpu_ids"][0]]["cost_per_hour"])
        held = Decimal(str((_dt(done["finished_at"]) - _dt(done["scheduled_at"])).total_seconds()))
        assert abs(Decimal(cost["total_cost"]) - price * held / 3600) < Decimal("0.000001"), cost
        listed = [c for c in (await api.get("/costs", params={"limit": 200})).json()["costs"]]
        assert [c["job_id"] for c in listed].count(job["id"]) == 1
