"""The job-event consumer: GPUs held by scheduled jobs are in use until the job ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from gpufleet.v1 import fleet_pb2
from sqlalchemy import text

from services.fleet.entrypoints.consumers import job_event_handler
from shared.contracts import jobs, topics
from shared.events import Envelope, header_map
from shared.grpc import with_key
from shared.kafka import ensure_topics, make_broker
from shared.settings import KafkaSettings

from .conftest import AGENT_TOKEN, Fleet
from .test_registry import node_request

pytestmark = pytest.mark.integration


def job_event(event_type: str, job_id: UUID, gpu_ids: list[str], memory_mb: int = 20000) -> Envelope:
    status = {
        jobs.JOB_SCHEDULED: "scheduled",
        jobs.JOB_SUCCEEDED: "succeeded",
        jobs.JOB_FAILED: "failed",
        jobs.JOB_CANCELLED: "cancelled",
        jobs.JOB_STARTED: "running",
    }[event_type]
    snapshot = jobs.JobSnapshotV1(
        job_id=job_id,
        organization_id=uuid4(),
        status=status,
        command="python train.py",  # type: ignore[arg-type]
        gpu_count=len(gpu_ids),
        gpu_memory_mb=memory_mb,
        priority=0,
        created_at=datetime.now(UTC),
        allocation=[
            jobs.GpuAllocationV1(gpu_id=UUID(g), gpu_index=i, gpu_type="l4", cost_per_hour=Decimal("0.7"))
            for i, g in enumerate(gpu_ids)
        ],
    )
    return Envelope(
        type=event_type,
        source="gpufleet/scheduler",
        data=jobs.JobEventV1(job=snapshot),
        subject=str(job_id),
        organization_id=str(snapshot.organization_id),
    )


async def gpu_state(fleet: Fleet, gpu_id: str) -> tuple:
    async with fleet.db.transaction(system=True) as s:
        row = (
            await s.execute(
                text(
                    "SELECT status, in_use, current_job_id, memory_allocated FROM gpu_resources WHERE id = :g"
                ),
                {"g": gpu_id},
            )
        ).one()
    return tuple(row)


async def outbox_count(fleet: Fleet, gpu_id: str) -> int:
    async with fleet.db.transaction(system=True) as s:
        return (
            await s.execute(text("SELECT count(*) FROM outbox WHERE key = :k"), {"k": gpu_id})
        ).scalar_one()


async def test_scheduled_job_holds_its_gpus_until_it_ends(fleet: Fleet) -> None:
    node = await fleet.registry.RegisterNode(
        node_request(models=("NVIDIA L4", "NVIDIA L4")), metadata=with_key(AGENT_TOKEN)
    )
    held, free = node.gpus[0].gpu_id, node.gpus[1].gpu_id
    handle = job_event_handler(fleet.app.deps)
    job = uuid4()
    scheduled = job_event(jobs.JOB_SCHEDULED, job, [held])
    await handle(scheduled)
    await handle(scheduled)  # redelivery: applied once
    await handle(job_event(jobs.JOB_STARTED, job, [held]))
    assert await gpu_state(fleet, held) == ("allocated", True, job, 20000)
    assert await gpu_state(fleet, free) == ("available", False, None, 0)

    listed = await fleet.inventory.ListGpus(
        fleet_pb2.ListGpusRequest(status="allocated"), metadata=with_key(fleet.identity.new_key())
    )
    assert [g.in_use for g in listed.gpus if g.id == held] == [True]

    await handle(job_event(jobs.JOB_SUCCEEDED, uuid4(), [held]))  # another job's end frees nothing
    assert (await gpu_state(fleet, held))[1] is True
    await handle(job_event(jobs.JOB_SUCCEEDED, job, [held]))
    assert await gpu_state(fleet, held) == ("available", False, None, 0)
    assert await outbox_count(fleet, held) == 1  # only the registration: allocation is not re-published
    async with fleet.db.transaction(system=True) as s:
        claims = (
            await s.execute(
                text(
                    "SELECT count(*) FROM processed_events WHERE consumer = 'fleet.gpu-allocation' "
                    "AND event_id = :e"
                ),
                {"e": scheduled.id},
            )
        ).scalar_one()
    assert claims == 1


@pytest.mark.parametrize("terminal", [jobs.JOB_FAILED, jobs.JOB_CANCELLED])
async def test_failed_and_cancelled_jobs_free_their_gpus(fleet: Fleet, terminal: str) -> None:
    node = await fleet.registry.RegisterNode(
        node_request(models=("NVIDIA L4",)), metadata=with_key(AGENT_TOKEN)
    )
    gpu, job = node.gpus[0].gpu_id, uuid4()
    handle = job_event_handler(fleet.app.deps)
    await handle(job_event(jobs.JOB_SCHEDULED, job, [gpu]))
    await handle(job_event(terminal, job, [gpu]))
    assert await gpu_state(fleet, gpu) == ("available", False, None, 0)


async def test_job_events_arrive_through_the_broker(fleet: Fleet, kafka) -> None:
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False, kafka_topic_partitions=3
    )
    await ensure_topics(settings, [topics.JOBS])
    node = await fleet.registry.RegisterNode(
        node_request(models=("NVIDIA L4",)), metadata=with_key(AGENT_TOKEN)
    )
    gpu, job = node.gpus[0].gpu_id, uuid4()
    broker = make_broker(settings, "fleet-test")
    fleet.app.register_consumers(broker)
    await broker.start()

    async def until(want: tuple) -> None:
        async with asyncio.timeout(60):  # TimeoutError fails the test
            while await gpu_state(fleet, gpu) != want:
                await asyncio.sleep(0.2)

    try:
        scheduled = job_event(jobs.JOB_SCHEDULED, job, [gpu], memory_mb=1024)
        await broker.publish(
            scheduled.value(),
            topic=topics.JOBS,
            key=str(job).encode(),
            headers=header_map(scheduled.headers()),
        )
        await until(("allocated", True, job, 1024))
        done = job_event(jobs.JOB_SUCCEEDED, job, [gpu])
        await broker.publish(
            done.value(), topic=topics.JOBS, key=str(job).encode(), headers=header_map(done.headers())
        )
        await until(("available", False, None, 0))
    finally:
        await broker.stop()
