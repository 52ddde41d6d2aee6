"""Consumers accept events only from the producers the topic access table allows (shared/contracts/topics.py):
against the real broker, a record whose CloudEvents ``source`` names another service is dead-lettered with
the reason and never applied, and the records behind it on its partition are applied as usual.

The embedded broker has no ACLs, so anyone who reaches it could set any ``source``: this check stops a
misrouted producer, not an attacker (docs/topics.md). On Apache Kafka the ACLs stop the writer first."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.billing.adapters.repository import sql_unit_of_work
from services.billing.entrypoints.consumers import register as register_billing
from services.billing.service_layer.handlers import Dependencies
from shared.consumers import subscribe
from shared.contracts import fleet, jobs
from shared.contracts.costs import COST_RECORDED
from shared.db import Database
from shared.events import Envelope, header_map
from shared.kafka import ensure_topics, make_broker

from .topics import read_all, settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def succeeded(source: str) -> Envelope:
    job = jobs.JobSnapshotV1(
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        status="succeeded",
        command="train",
        gpu_count=1,
        gpu_memory_mb=1024,
        priority=50,
        node_id=uuid.uuid4(),
        created_at=T0,
        scheduled_at=T0,
        started_at=T0,
        finished_at=T0 + timedelta(hours=1),
        allocation=[
            jobs.GpuAllocationV1(
                gpu_id=uuid.uuid4(), gpu_index=0, gpu_type="a100-80gb", cost_per_hour=Decimal("2")
            )
        ],
    )
    return Envelope(
        type=jobs.JOB_SUCCEEDED,
        source=source,
        data=jobs.JobEventV1(job=job),
        subject=str(job.job_id),
        organization_id=str(job.organization_id),
    )


async def publish(broker, topic: str, envs: list[Envelope]) -> None:
    for e in envs:  # one key: one partition, so the forged record sits in front of the good one
        await broker.publish(e.value(), topic=topic, key=b"same", headers=header_map(e.headers()))


async def wait_for(condition, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


def consumed(topic: str, group: str, outcome: str) -> float:
    labels = {"topic": topic, "consumer": group, "outcome": outcome}
    return REGISTRY.get_sample_value("gpufleet_events_consumed_total", labels) or 0.0


async def billed(db: Database, job_id: uuid.UUID) -> int:
    async with db.transaction(system=True) as s:
        return int(
            (
                await s.execute(
                    text("SELECT count(*) FROM outbox WHERE event_type = :t AND key = :k"),
                    {"t": COST_RECORDED, "k": str(job_id)},
                )
            ).scalar_one()
        )


async def test_billing_dead_letters_a_job_event_that_is_not_from_the_scheduler(migrate_schema, kafka):
    """An agent (or anything else) that writes a "job succeeded" onto the job topic bills nothing."""
    db = Database(await migrate_schema("billing"), "billing", pool_size=2)
    topic = f"test.jobs.{uuid.uuid4().hex[:8]}"  # decodes job events: checked as gpufleet.jobs.v1
    group = f"billing-test-{uuid.uuid4().hex[:6]}"
    forged, genuine = succeeded("gpufleet/agent/node-7"), succeeded("gpufleet/scheduler")
    broker = make_broker(settings(kafka.bootstrap), "test-source-billing")
    register_billing(broker, Dependencies(uow=sql_unit_of_work(db)), topic=topic, group_id=group)
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    await broker.start()
    try:
        await publish(broker, topic, [forged, genuine])

        async def genuine_billed() -> bool:
            return await billed(db, genuine.data.job.job_id) == 1

        await wait_for(genuine_billed)  # the forged record, in front of it, was handled first
        dlq = await read_all(kafka.bootstrap, f"{topic}.dlq", 1)
        assert await billed(db, forged.data.job.job_id) == 0
    finally:
        await broker.stop()
        await db.dispose()

    assert [header_map(r.headers)["ce_id"] for r in dlq] == [str(forged.id)]
    h = header_map(dlq[0].headers)
    assert h["x-dlq-error-type"] == "UnexpectedSource" and h["x-dlq-consumer"] == group
    assert "gpufleet/agent/node-7" in h["x-dlq-reason"] and "gpufleet/scheduler" in h["x-dlq-reason"]
    assert h["ce_source"] == "gpufleet/agent/node-7" and dlq[0].value == forged.value()
    assert consumed(topic, group, "unexpected_source") == 1
    assert consumed(topic, group, "processed") == 1


async def test_a_single_record_consumer_skips_a_foreign_source_and_goes_on(kafka):
    topic = f"test.fleet.{uuid.uuid4().hex[:8]}"  # decodes fleet events: checked as gpufleet.fleet.v1
    group = f"g-{uuid.uuid4().hex[:6]}"
    applied: list[uuid.UUID] = []

    async def handle(env: Envelope) -> None:
        applied.append(env.id)

    def registered(source: str) -> Envelope:
        gpu = fleet.GpuSnapshotV1(
            gpu_id=uuid.uuid4(),
            node_id=uuid.uuid4(),
            node_name="node-7",
            index=0,
            uuid=f"GPU-{uuid.uuid4()}",
            name="NVIDIA A100-SXM4-80GB",
            gpu_type="a100-80gb",
            memory_total_mb=81920,
            cost_per_hour=Decimal("2"),
            provider="onprem",
            status="available",
            revision=1,
            changed_at=T0,
        )
        return Envelope(type=fleet.GPU_REGISTERED, source=source, data=fleet.GpuChangedV1(gpu=gpu))

    envs = [registered("gpufleet/scheduler"), registered("nobody"), registered("gpufleet/fleet")]
    broker = make_broker(settings(kafka.bootstrap), "test-source-single")
    subscribe(broker, topic, group_id=group, models=fleet.EVENT_TYPES, handle=handle, max_attempts=1)
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    await broker.start()
    try:
        await publish(broker, topic, envs)

        async def last_applied() -> bool:
            return envs[2].id in applied

        await wait_for(last_applied)
        dlq = await read_all(kafka.bootstrap, f"{topic}.dlq", 2)
    finally:
        await broker.stop()
    assert applied == [envs[2].id]
    assert [header_map(r.headers)["ce_id"] for r in dlq] == [str(envs[0].id), str(envs[1].id)]
    assert {header_map(r.headers)["x-dlq-error-type"] for r in dlq} == {"UnexpectedSource"}
