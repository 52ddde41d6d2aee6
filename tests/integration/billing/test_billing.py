"""Billing against real PostgreSQL and the real broker: each finished job billed once, tenants apart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import billing_pb2, billing_pb2_grpc, identity_pb2_grpc
from sqlalchemy import text

from services.billing.entrypoints.consumers import register
from services.billing.entrypoints.grpc_server import BillingServicer
from services.billing.service_layer.handlers import record_job_cost
from shared.contracts import jobs, topics
from shared.contracts.costs import COST_RECORDED, CostRecordedV1
from shared.db import Database
from shared.events import Envelope, header_map
from shared.grpc import Authenticator
from shared.kafka import ensure_topics, make_broker
from shared.settings import KafkaSettings
from tests.fake_identity import FakeIdentity, grpc_server

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def finished(org: uuid.UUID, prices: list[str], seconds: float = 120, status="succeeded") -> Envelope:
    snapshot = jobs.JobSnapshotV1(
        job_id=uuid.uuid4(),
        organization_id=org,
        status=status,
        command="train",
        gpu_count=len(prices),
        gpu_memory_mb=1024,
        priority=50,
        node_id=uuid.uuid4(),
        created_at=T0,
        scheduled_at=T0,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=seconds),
        allocation=[
            jobs.GpuAllocationV1(
                gpu_id=uuid.uuid4(), gpu_index=i, gpu_type="a100-80gb", cost_per_hour=Decimal(p)
            )
            for i, p in enumerate(prices)
        ],
    )
    return Envelope(
        type=jobs.JOB_SUCCEEDED if status == "succeeded" else jobs.JOB_FAILED,
        source="test",
        data=jobs.JobEventV1(job=snapshot),
        organization_id=str(org),
    )


@pytest.fixture
async def db(migrate_schema):
    database = Database(await migrate_schema("billing"), "billing", pool_size=4)
    yield database
    await database.dispose()


async def cost_events(db: Database, job_id: uuid.UUID) -> list[CostRecordedV1]:
    async with db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT payload FROM outbox WHERE event_type = :t AND key = :k"),
                {"t": COST_RECORDED, "k": str(job_id)},
            )
        ).all()
    return [CostRecordedV1.model_validate_json(bytes(r.payload)) for r in rows]


async def test_a_finished_job_is_billed_once_even_when_redelivered(db):
    org = uuid.uuid4()
    event = finished(org, ["1.8900", "3.0000"], seconds=120)
    first = await record_job_cost(db, event)
    again = await record_job_cost(db, event)  # redelivery: same event id
    other_id = Envelope(type=event.type, source="test", data=event.data)  # same job, another event id
    third = await record_job_cost(db, other_id)
    assert first is not None and again is None and third is None
    assert first.total == Decimal("0.16300000")  # (1.89 + 3.00) $/h x 120 s / 3600
    (recorded,) = await cost_events(db, event.data.job.job_id)
    assert recorded.total_cost == first.total and recorded.gpu_count == 2 and recorded.held_seconds == 120


async def test_non_terminal_and_gpu_less_jobs_record_nothing(db):
    org = uuid.uuid4()
    started = finished(org, ["2"])
    started = Envelope(type=jobs.JOB_STARTED, source="test", data=started.data)
    assert await record_job_cost(db, started) is None
    queued_cancel = finished(org, [], status="failed")
    assert await record_job_cost(db, queued_cancel) is None
    assert await cost_events(db, queued_cancel.data.job.job_id) == []


async def test_grpc_answers_only_the_callers_organization(db):
    identity = FakeIdentity()
    async with grpc_server(
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, identity)], ["gpufleet.v1.IdentityService"]
    ) as id_target:
        auth = Authenticator(id_target, ttl=0)
        servicer = BillingServicer(db, auth)
        async with grpc_server(
            [(billing_pb2_grpc.add_BillingServiceServicer_to_server, servicer)],
            ["gpufleet.v1.BillingService"],
        ) as target:
            org_a, org_b = uuid.uuid4(), uuid.uuid4()
            key_a, key_b = identity.key(org_a), identity.key(org_b)
            events = [finished(org_a, ["2.0000"], seconds=s) for s in (60, 1800, 3600)]
            for e in events:
                await record_job_cost(db, e)
            async with grpc.aio.insecure_channel(target) as ch:
                stub = billing_pb2_grpc.BillingServiceStub(ch)
                job_a = str(events[2].data.job.job_id)
                cost = await stub.GetJobCost(billing_pb2.GetJobCostRequest(job_id=job_a), metadata=key_a)
                assert cost.total_cost == "2.00000000" and cost.lines[0].cost_per_hour == "2.0000"
                page1 = await stub.ListJobCosts(billing_pb2.ListJobCostsRequest(limit=2), metadata=key_a)
                page2 = await stub.ListJobCosts(
                    billing_pb2.ListJobCostsRequest(limit=2, cursor=page1.next_cursor), metadata=key_a
                )
                listed = [c.job_id for c in page1.costs] + [c.job_id for c in page2.costs]
                assert (
                    sorted(listed) == sorted(str(e.data.job.job_id) for e in events) and not page2.next_cursor
                )
                for bad in (job_a, "not-a-uuid", str(uuid.uuid4())):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.GetJobCost(billing_pb2.GetJobCostRequest(job_id=bad), metadata=key_b)
                    assert err.value.code() == grpc.StatusCode.NOT_FOUND
                assert (
                    list((await stub.ListJobCosts(billing_pb2.ListJobCostsRequest(), metadata=key_b)).costs)
                    == []
                )
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ListJobCosts(billing_pb2.ListJobCostsRequest(limit=500), metadata=key_a)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await auth.close()


async def test_consumer_bills_a_job_event_from_the_real_broker(db, kafka):
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False, kafka_topic_partitions=3
    )
    await ensure_topics(settings, (topics.JOBS,))
    broker = make_broker(settings, "billing-test")
    register(broker, db, group_id=f"billing-test-{uuid.uuid4().hex[:6]}")
    event = finished(uuid.uuid4(), ["4.0000"], seconds=900)
    await broker.start()
    try:
        await broker.publish(
            event.value(),
            topic=topics.JOBS,
            key=str(event.data.job.job_id).encode(),
            headers=header_map(event.headers()),
        )
        for _ in range(150):
            if await cost_events(db, event.data.job.job_id):
                break
            await asyncio.sleep(0.2)
    finally:
        await broker.stop()
    (recorded,) = await cost_events(db, event.data.job.job_id)
    assert recorded.total_cost == Decimal("1.00000000")
