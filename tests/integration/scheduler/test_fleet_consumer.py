"""Fleet inventory events over the real broker -> the GPU projection -> the loop places a waiting job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text

from services.scheduler.entrypoints import consumers
from services.scheduler.service_layer.scheduling import Scheduler, run_scheduling_loop
from shared.contracts import fleet, topics
from shared.events import Envelope, header_map
from shared.kafka import make_broker
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


def gpu_event(gpu_id: uuid.UUID, node: uuid.UUID, org: uuid.UUID, revision: int, status: str) -> Envelope:
    snap = fleet.GpuSnapshotV1(
        gpu_id=gpu_id,
        node_id=node,
        node_name="n1",
        index=0,
        uuid=f"GPU-{gpu_id}",
        name="NVIDIA L40S",
        gpu_type="l40s",
        memory_total_mb=49152,
        cost_per_hour=Decimal("1.1900"),
        provider="test",
        organization_id=org,
        status=status,
        revision=revision,
        changed_at=datetime.now(UTC),
    )
    return Envelope(
        type=fleet.GPU_STATUS_CHANGED if revision > 1 else fleet.GPU_REGISTERED,
        source="gpufleet/fleet",
        subject=str(gpu_id),
        data=fleet.GpuChangedV1(gpu=snap),
    )


async def eventually(check, timeout: float = 30.0):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result


async def test_inventory_events_are_projected_once_and_wake_the_loop(harness, kafka):
    org, key = harness.tenant()
    node, gpu_id = uuid.uuid4(), uuid.uuid4()
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="wait for capacity", gpu_count=1, gpu_type="l40s"),
        metadata=key,
    )
    stop = asyncio.Event()
    # A long tick: after its first (empty-handed) round, only a wake-up makes the loop look again.
    loop = asyncio.create_task(
        run_scheduling_loop(stop, Scheduler(harness.deps, "integration-leader"), tick_seconds=600)
    )
    broker = make_broker(
        KafkaSettings(kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False),
        "scheduler-test",
    )
    topic = f"{topics.FLEET}.test-{uuid.uuid4().hex[:8]}"  # only this test's events
    consumers.register(broker, harness.deps, topic=topic)
    await broker.start()
    try:
        stale = gpu_event(gpu_id, node, org, 1, "available")
        offline = gpu_event(gpu_id, node, org, 3, "offline")
        available = gpu_event(gpu_id, node, org, 4, "available")
        for env in (offline, stale, offline):  # out of order and a redelivery
            await broker.publish(
                env.value(), topic=topic, key=str(gpu_id).encode(), headers=header_map(env.headers())
            )

        async def projected() -> str | None:
            async with harness.db.transaction(system=True) as s:
                row = (
                    await s.execute(
                        text("SELECT status, revision FROM gpu_inventory WHERE gpu_id = :g"), {"g": gpu_id}
                    )
                ).first()
            return f"{row.status}@{row.revision}" if row else None

        assert await eventually(projected) == "offline@3"  # the older revision did not win
        await broker.publish(
            available.value(), topic=topic, key=str(gpu_id).encode(), headers=header_map(available.headers())
        )

        async def scheduled():
            got = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job.id), metadata=key)
            return got if got.status == "scheduled" else None

        placed = await eventually(scheduled)
        assert placed.gpu_ids == [str(gpu_id)]
        async with harness.db.transaction(system=True) as s:
            claims = (
                await s.execute(
                    text(
                        "SELECT count(*) FROM processed_events WHERE consumer = 'scheduler.fleet-inventory' "
                        "AND event_id = ANY(:ids)"
                    ),
                    {"ids": [stale.id, offline.id, available.id]},
                )
            ).scalar()
        assert claims == 3  # the redelivered event was claimed once
    finally:
        stop.set()
        harness.deps.wakeup.set()
        await asyncio.wait_for(loop, 10)
        await broker.stop()
