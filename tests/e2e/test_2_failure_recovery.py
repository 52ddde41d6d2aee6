"""Crashes and a broker that loses everything: no job, cost or notification is lost or counted twice."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from shared.contracts import topics
from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def _costs_by_job(api) -> dict[str, tuple[str, int]]:
    """job id -> (total cost, number of cost lines), over every page."""
    counts: dict[str, tuple[str, int]] = {}
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/costs", params=params)).json()
        for cost in page["costs"]:
            assert cost["job_id"] not in counts, "a job listed twice"
            counts[cost["job_id"]] = (cost["total_cost"], len(cost["lines"]))
        cursor = page.get("next_cursor")
        if not cursor:
            return counts


async def test_billing_crash_loses_no_cost(stack, orgs):
    stack.processes["billing"].kill()  # SIGKILL: no clean shutdown
    async with client(stack, orgs["a"]) as api:
        job = (await api.post("/jobs", json={"command": "echo billed-later", "gpu_count": 1})).json()
        await wait_status(api, job["id"], {"succeeded"})
        stack.processes["billing"].start()
        await stack.wait_ready(names=("billing",))
        await eventually(lambda: _has_cost(api, job["id"]))
        assert (await _costs_by_job(api))[job["id"]][1] == 1  # one GPU, one line


async def test_agent_crash_keeps_the_running_job_which_ends_once_and_frees_its_gpu(stack, orgs):
    async with client(stack, orgs["a"]) as api:
        job = (await api.post("/jobs", json={"command": "sleep 5; echo done", "gpu_count": 2})).json()
        await wait_status(api, job["id"], {"running"})
        stack.processes["agent"].kill()  # SIGKILL: the job's supervisor lives on without the agent
        stack.processes["agent"].start()
        ended = await wait_status(api, job["id"], {"failed", "succeeded", "cancelled"}, timeout=60)
        assert ended["status"] == "succeeded" and not ended["error_message"], ended
        assert "done" in ended["output_tail"]
        again = (await api.get(f"/jobs/{job['id']}")).json()
        assert again["status"] == "succeeded" and again["finished_at"] == ended["finished_at"]  # ended once
        nxt = (await api.post("/jobs", json={"command": "echo after-crash", "gpu_count": 2})).json()
        assert (await wait_status(api, nxt["id"], {"succeeded", "failed"}))["status"] == "succeeded"


async def test_broker_restart_replays_without_double_counting(stack, orgs, e2e_kafka):
    kafka = e2e_kafka
    async with client(stack, orgs["a"]) as api:
        before = await _costs_by_job(api)
        kafka.stop()  # the embedded broker keeps everything in memory: all topics and offsets are gone
        kafka.start()
        job = (await api.post("/jobs", json={"command": "echo after-broker-restart", "gpu_count": 1})).json()
        done = await wait_status(api, job["id"], {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded"
        await eventually(lambda: _has_cost(api, job["id"]), timeout=60)
        after = await _costs_by_job(api)
        # Every job event was replayed into the new broker and consumed again: no cost changed.
        assert {j: after[j] for j in before} == before
        assert after[job["id"]][1] == 1
        # The new broker holds the events from before it started: the outboxes re-published them.
        replayed = await _job_ids_on_topic(kafka.bootstrap)
        assert set(before) <= replayed


async def _job_ids_on_topic(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(topics.JOBS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    keys: set[str] = set()
    try:
        while batch := await consumer.getmany(timeout_ms=3000):  # until a fetch finds nothing more
            keys |= {r.key.decode() for records in batch.values() for r in records if r.key}
        return keys
    finally:
        await consumer.stop()


async def _has_cost(api, job_id: str) -> bool:
    return (await api.get(f"/jobs/{job_id}/cost")).status_code == 200
