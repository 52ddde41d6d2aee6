"""The time-limit warning against the real database and broker: the leader's loop, which nothing else wakes
(its tick and lease renewal are far off), wakes when a running job's warning is due and puts exactly one
``gpufleet.job.time_limit_warning`` on the job topic (through the outbox and its relay), before the job's
end; a restarted leader does not send it again, and a deposed one cannot send it at all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text

from services.scheduler.bootstrap import bootstrap
from services.scheduler.service_layer.options import SchedulingOptions
from services.scheduler.service_layer.scheduling import Deposed, Scheduler, run_scheduling_loop
from shared.contracts import jobs as contract
from shared.contracts import topics
from shared.events import Envelope, decode
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings
from shared.time_limit import warning_after

from .test_scheduler import outbox_events

pytestmark = pytest.mark.integration
MEMORY = 666_666  # MB: no other test's GPU has this much
LIMIT = 2  # seconds: warned at 1.8 s
FAR = 30.0  # the loop's tick and lease renewal: nothing but a due warning wakes it sooner


async def _free_lease(db) -> None:
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE scheduler_lease SET expires_at = now() WHERE id = 1"))


async def _row(db, job_id: str):
    async with db.transaction(system=True) as s:
        return (
            await s.execute(
                text("SELECT status, attempt, started_at, time_limit_warned_attempt FROM jobs WHERE id = :j"),
                {"j": job_id},
            )
        ).one()


async def _running_job(harness, leader: Scheduler) -> tuple[str, uuid.UUID]:
    """A job with a LIMIT s time limit on a GPU of its own organization, started by its agent; and
    its node."""
    org, key = harness.tenant()
    node = uuid.uuid4()
    await harness.add_gpus(org, node, 1, memory=MEMORY)
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(
            command="sleep 600", gpu_count=1, gpu_memory_mb=MEMORY, time_limit_seconds=LIMIT
        ),
        metadata=key,
    )
    report = await leader.step()
    assert report is not None and job.id in {str(j.id) for j in report.placed}
    await harness.agents.ReportJobStarted(
        scheduler_pb2.ReportJobStartedRequest(node_id=str(node), job_id=job.id), metadata=harness.agent
    )
    return job.id, node


async def _timed_out(harness, job_id: str, node: uuid.UUID) -> None:
    await harness.agents.ReportJobFinished(
        scheduler_pb2.ReportJobFinishedRequest(node_id=str(node), job_id=job_id, timed_out=True, attempt=1),
        metadata=harness.agent,
    )


async def _warnings(db, job_id: str) -> list[contract.JobEventV1]:
    return [e for kind, e in await outbox_events(db, job_id) if kind == contract.JOB_TIME_LIMIT_WARNING]


async def _topic_events(bootstrap_servers: str, job_id: str, until: datetime) -> list[Envelope]:
    """The job's events on the job topic, read from the start until ``until`` (wall clock)."""
    consumer = AIOKafkaConsumer(
        topics.JOBS, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Envelope] = []
    try:
        while datetime.now(until.tzinfo) < until:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [
                    decode(r.headers, r.value, contract.EVENT_TYPES)
                    for r in records
                    if r.key == job_id.encode()
                ]
    finally:
        await consumer.stop()
    return found


async def test_one_warning_on_the_job_topic_at_its_due_time_and_none_after_a_restart(harness, kafka):
    await _free_lease(harness.db)
    options = SchedulingOptions(lease_ttl_s=2 * FAR, lease_renew_s=FAR)
    deps = bootstrap(db=harness.db, catalog=harness.deps.catalog, options=options)
    leader = Scheduler(deps, f"warner-{uuid.uuid4().hex[:6]}")
    assert await leader.step() is not None  # it leads
    job_id, node = await _running_job(harness, leader)
    started = (await _row(harness.db, job_id)).started_at
    due = started + timedelta(seconds=warning_after(LIMIT))

    stop, relay_stop = asyncio.Event(), asyncio.Event()
    relay = OutboxRelay(
        harness.db,
        KafkaSettings(kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False),
        publishes=(topics.JOBS,),
        poll_seconds=0.1,
    )
    relaying = asyncio.create_task(relay.run(relay_stop))
    loop = asyncio.create_task(run_scheduling_loop(stop, leader, tick_seconds=FAR))
    try:  # the loop's first step reads that the job runs; then only the due warning wakes it
        twice = started + 2 * timedelta(seconds=warning_after(LIMIT))
        events = await _topic_events(kafka.bootstrap, job_id, until=twice + timedelta(seconds=1))
        warnings = [e for e in events if e.type == contract.JOB_TIME_LIMIT_WARNING]
        assert len(warnings) == 1, [e.type for e in events]
        [warning] = warnings
        assert due <= warning.time < twice  # sent when due, not a tick (30 s) later
        event = warning.data
        assert isinstance(event, contract.JobEventV1)
        assert (event.previous_status, event.job.status, event.job.attempt) == ("running", "running", 1)
        assert event.stops_at == started + timedelta(seconds=LIMIT)
        assert event.reason is not None and event.reason.startswith(f"time limit of {LIMIT} s: the job is")
        assert (await _row(harness.db, job_id)).time_limit_warned_attempt == 1
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)  # hands the lease over
        relay_stop.set()
        await asyncio.wait_for(relaying, 30)
    assert not leader.leading

    # Another replica (or this one restarted) leads now: it rebuilds and knows the warning was sent.
    again = Scheduler(deps, f"warner-{uuid.uuid4().hex[:6]}")
    report = await again.step()
    assert report is not None and report.warned == []
    await _timed_out(harness, job_id, node)
    kinds = [kind for kind, _ in await outbox_events(harness.db, job_id)]
    assert kinds[-3:] == [contract.JOB_STARTED, contract.JOB_TIME_LIMIT_WARNING, contract.JOB_TIMED_OUT]
    await again.give_up()


async def test_a_deposed_leader_cannot_send_a_warning_the_next_one_sends_it_late_once(harness):
    await _free_lease(harness.db)
    options = SchedulingOptions(lease_ttl_s=FAR, lease_renew_s=FAR / 2)
    deps = bootstrap(db=harness.db, catalog=harness.deps.catalog, options=options)
    deposed = Scheduler(deps, f"old-{uuid.uuid4().hex[:6]}")
    assert await deposed.step() is not None
    job_id, node = await _running_job(harness, deposed)
    assert (await deposed.step()).warned == []  # it knows the job runs; not due yet
    await asyncio.sleep(warning_after(LIMIT) + 0.2)

    # Another replica took the lease meanwhile (this one stalled): a higher token, its own holder.
    async with harness.db.transaction(system=True) as s:
        await s.execute(
            text(
                "UPDATE scheduler_lease SET holder = 'usurper', token = token + 1, "
                "expires_at = now() + interval '60 seconds' WHERE id = 1"
            )
        )
    with pytest.raises(Deposed):  # it does not know: the warning it finds due must not go out
        await deposed.step()
    assert await _warnings(harness.db, job_id) == []
    assert (await _row(harness.db, job_id)).time_limit_warned_attempt == 0

    await _free_lease(harness.db)  # the usurper went away in turn: a new leader takes over after the due time
    successor = Scheduler(deps, f"new-{uuid.uuid4().hex[:6]}")
    report = await successor.step()
    assert report is not None and [str(j.id) for j in report.warned] == [job_id]  # late, once
    assert (await successor.step()).warned == []
    [warning] = await _warnings(harness.db, job_id)
    assert warning.reason is not None and warning.job.attempt == 1
    await _timed_out(harness, job_id, node)
    await successor.give_up()
