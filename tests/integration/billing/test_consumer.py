"""The job-cost consumer through the real broker into the real PostgreSQL: a terminal event becomes cost
lines plus one CostRecorded outbox row, in one transaction, exactly once per job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from services.billing.service_layer.handlers import CONSUMER
from shared.contracts import costs, jobs, topics
from shared.events import decode, header_map
from shared.kafka import ensure_topics, make_broker

from .conftest import Billing, gpu, job_event

pytestmark = pytest.mark.integration


async def test_terminal_event_from_the_broker_is_billed_once(billing: Billing, kafka) -> None:
    settings = billing.settings.model_copy(
        update={"kafka_bootstrap_servers": kafka.bootstrap, "kafka_idempotent_producer": False}
    )
    org = uuid.uuid4()
    cheap, dear = gpu("1.2000", "t4"), gpu("3.6000", "h100")
    finished = job_event(org, [cheap, dear], held=timedelta(minutes=10))
    job_id = finished.data.job.job_id
    started = job_event(org, [cheap, dear], event_type=jobs.JOB_STARTED, job_id=job_id)
    # The same job again under another event id (a scheduler that re-emitted its terminal event).
    again = job_event(org, [cheap, dear], event_type=jobs.JOB_FAILED, job_id=job_id)
    queued_then_cancelled = job_event(org, [], event_type=jobs.JOB_CANCELLED)
    key = str(job_id).encode()  # one key: one partition, so the events arrive in this order

    await ensure_topics(settings, (topics.JOBS,))
    broker = make_broker(settings, "test-billing")
    billing.app.register_consumers(broker, group_id=f"billing.test-{uuid.uuid4().hex[:8]}")
    await broker.start()
    try:
        for env in (started, finished, finished, again, queued_then_cancelled):
            await broker.publish(env.value(), topic=topics.JOBS, key=key, headers=header_map(env.headers()))
        wanted = {finished.id, again.id, queued_then_cancelled.id}  # started is not terminal: never claimed
        async with asyncio.timeout(30):
            while True:
                claimed = await billing.rows(
                    "SELECT event_id FROM processed_events WHERE consumer = :c AND event_id = ANY(:ids)",
                    c=CONSUMER,
                    ids=list(wanted),
                )
                if {r.event_id for r in claimed} == wanted:
                    break
                await asyncio.sleep(0.1)
    finally:
        await broker.stop()

    lines = await billing.rows(
        "SELECT gpu_id, gpu_type, cost_per_hour, seconds, total_cost, organization_id, start_time, end_time "
        "FROM cost_tracking WHERE job_id = :j",
        j=job_id,
    )
    by_gpu = {r.gpu_id: r for r in lines}
    assert set(by_gpu) == {cheap.gpu_id, dear.gpu_id}  # two GPUs, two lines, despite three deliveries
    assert by_gpu[cheap.gpu_id].total_cost == Decimal("0.20000000")  # 1.2/h x 600 s
    assert by_gpu[dear.gpu_id].total_cost == Decimal("0.60000000")  # 3.6/h x 600 s
    assert by_gpu[dear.gpu_id].seconds == Decimal("600") and by_gpu[dear.gpu_id].gpu_type == "h100"
    assert {r.organization_id for r in lines} == {org}
    assert by_gpu[cheap.gpu_id].start_time == finished.data.job.scheduled_at

    outbox = await billing.rows(
        "SELECT topic, key, event_type, headers, payload FROM outbox WHERE key = :k", k=str(job_id)
    )
    assert len(outbox) == 1
    row = outbox[0]
    assert (row.topic, row.event_type) == (topics.COSTS, costs.COST_RECORDED)
    recorded = decode(row.headers, bytes(row.payload), costs.EVENT_TYPES)
    assert recorded.organization_id == str(org) and recorded.subject == str(job_id)
    payload = recorded.data
    assert isinstance(payload, costs.CostRecordedV1)
    assert payload.total_cost == Decimal("0.80000000") and payload.gpu_count == 2
    assert payload.held_seconds == Decimal("600") and payload.job_id == job_id
    assert {line.gpu_id: line.cost for line in payload.lines} == {
        cheap.gpu_id: Decimal("0.20000000"),
        dear.gpu_id: Decimal("0.60000000"),
    }

    cancelled_job = queued_then_cancelled.data.job.job_id
    assert await billing.rows("SELECT 1 FROM cost_tracking WHERE job_id = :j", j=cancelled_job) == []
    assert await billing.rows("SELECT 1 FROM outbox WHERE key = :k", k=str(cancelled_job)) == []
