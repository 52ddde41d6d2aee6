"""Billing per attempt against the real PostgreSQL and the real broker: a job requeued after its agent
died and then succeeded is two attempts, the lost one recorded and credited in full, the job charged
for the last one only; redelivery and replay bill nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from gpufleet.v1 import billing_pb2
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.billing.service_layer.handlers import CONSUMER
from shared.contracts import costs, jobs, topics
from shared.events import Envelope, header_map
from shared.kafka import ensure_topics, make_broker

from .conftest import Billing, gpu, job_event, requeued_event

pytestmark = pytest.mark.integration


async def publish_and_wait(billing: Billing, kafka, envelopes: list[Envelope]) -> None:  # type: ignore[no-untyped-def]
    """Publish in order on one key (one partition) and wait until the consumer claimed every ending."""
    settings = billing.settings.model_copy(
        update={"kafka_bootstrap_servers": kafka.bootstrap, "kafka_idempotent_producer": False}
    )
    await ensure_topics(settings, (topics.JOBS,))
    broker = make_broker(settings, "test-billing-attempts")
    billing.app.register_consumers(broker, group_id=f"billing.test-{uuid.uuid4().hex[:8]}")
    wanted = {e.id for e in envelopes if e.type in (*jobs.TERMINAL_EVENTS, jobs.JOB_REQUEUED)}
    await broker.start()
    try:
        for env in envelopes:
            key = str(env.data.job.job_id).encode()
            await broker.publish(env.value(), topic=topics.JOBS, key=key, headers=header_map(env.headers()))
        async with asyncio.timeout(30):
            while True:
                claimed = await billing.rows(
                    "SELECT event_id FROM processed_events WHERE consumer = :c AND event_id = ANY(:ids)",
                    c=CONSUMER,
                    ids=list(wanted),
                )
                if {r.event_id for r in claimed} == wanted:
                    return
                await asyncio.sleep(0.1)
    finally:
        await broker.stop()


async def test_requeued_then_succeeded_is_two_attempts_one_credited_net_the_last(
    billing: Billing, kafka
) -> None:
    org = uuid.uuid4()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    a, b, c = gpu("3.6000", "h100"), gpu("3.6000", "h100"), gpu("3.6000", "h100")
    lost = requeued_event(org, [a, b], held=timedelta(minutes=20), scheduled=t0)
    job_id = lost.data.job.job_id
    # Attempt 2 lands on one of the GPUs attempt 1 held: per attempt, not per GPU, is what is unique.
    done = job_event(
        org, [b, c], held=timedelta(minutes=5), job_id=job_id, attempt=2, scheduled=t0 + timedelta(minutes=21)
    )
    # The scheduler's outbox re-published both (another event id each) after a broker restart, and the
    # broker redelivered each delivery once more.
    lost_again = Envelope(type=lost.type, source=lost.source, data=lost.data, organization_id=str(org))
    done_again = Envelope(type=done.type, source=done.source, data=done.data, organization_id=str(org))
    await publish_and_wait(billing, kafka, [lost, lost, done, lost_again, done, done_again])

    rows = await billing.rows(
        "SELECT attempt, outcome, gpu_id, total_cost, credit FROM cost_tracking WHERE job_id = :j"
        " ORDER BY attempt, gpu_id",
        j=job_id,
    )
    assert sorted((r.attempt, r.outcome, r.gpu_id, r.total_cost, r.credit) for r in rows) == sorted(
        [
            (1, "requeued", a.gpu_id, Decimal("1.20000000"), Decimal("1.20000000")),
            (1, "requeued", b.gpu_id, Decimal("1.20000000"), Decimal("1.20000000")),
            (2, "succeeded", b.gpu_id, Decimal("0.30000000"), Decimal(0)),
            (2, "succeeded", c.gpu_id, Decimal("0.30000000"), Decimal(0)),
        ]
    )

    outbox = await billing.rows("SELECT topic, event_type, payload FROM outbox WHERE key = :k", k=str(job_id))
    assert {(r.topic, r.event_type) for r in outbox} == {(topics.COSTS, costs.COST_RECORDED)}
    events = sorted(
        (costs.CostRecordedV1.model_validate_json(bytes(r.payload)) for r in outbox), key=lambda e: e.attempt
    )
    assert [(e.attempt, e.outcome, e.gross_cost, e.credit, e.total_cost) for e in events] == [
        (1, "requeued", Decimal("2.40000000"), Decimal("2.40000000"), Decimal(0)),
        (2, "succeeded", Decimal("0.60000000"), Decimal(0), Decimal("0.60000000")),
    ]
    assert {line.attempt for line in events[0].lines} == {1} and events[0].held_seconds == 1200

    cost = await billing.stub.GetJobCost(
        billing_pb2.GetJobCostRequest(job_id=str(job_id)), metadata=billing.identity.key(org)
    )
    assert (cost.total_cost, cost.gross_cost, cost.credit) == ("0.60000000", "3.00000000", "2.40000000")
    assert cost.gpu_count == 2 and cost.held_seconds == "300.000000" and len(cost.lines) == 4
    assert [(x.attempt, x.outcome, x.net_cost, x.credit, x.gpu_count) for x in cost.attempts] == [
        (1, "requeued", "0.00000000", "2.40000000", 2),
        (2, "succeeded", "0.60000000", "0.00000000", 2),
    ]
    assert [line.attempt for line in cost.lines] == [1, 1, 2, 2]
    listed = await billing.stub.ListJobCosts(
        billing_pb2.ListJobCostsRequest(), metadata=billing.identity.key(org)
    )
    assert [c.job_id for c in listed.costs] == [str(job_id)] and listed.total_cost == "0.60000000"


async def test_a_timed_out_attempt_is_charged(billing: Billing) -> None:
    org = uuid.uuid4()
    env = job_event(
        org, [gpu("7.2000")], held=timedelta(minutes=30), event_type=jobs.JOB_TIMED_OUT, attempt=3
    )
    billed = await billing.consume(env)
    assert billed is not None and billed.total == Decimal("3.60000000") and billed.credit == 0
    (row,) = await billing.rows(
        "SELECT attempt, outcome, credit FROM cost_tracking WHERE job_id = :j", j=env.data.job.job_id
    )
    assert (row.attempt, row.outcome, row.credit) == (3, "timed_out", Decimal(0))


async def test_the_schema_refuses_a_credit_on_an_attempt_that_ended_on_its_own(billing: Billing) -> None:
    org = uuid.uuid4()
    env = job_event(org, [gpu("1.0000")], held=timedelta(hours=1))
    assert await billing.consume(env) is not None
    with pytest.raises(IntegrityError, match="cost_tracking_credit_only_when_lost"):
        async with billing.db.transaction(system=True) as s:
            await s.execute(
                text("UPDATE cost_tracking SET credit = total_cost WHERE job_id = :j"),
                {"j": env.data.job.job_id},
            )
