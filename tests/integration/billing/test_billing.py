"""Billing against real PostgreSQL and the real broker: each finished job billed once, tenants apart."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import billing_pb2, billing_pb2_grpc, identity_pb2_grpc
from sqlalchemy import text

from services.billing.adapters.repository import sql_unit_of_work
from services.billing.entrypoints.consumers import register
from services.billing.entrypoints.grpc_server import BillingServicer
from services.billing.service_layer.handlers import Dependencies
from shared.contracts import jobs, topics
from shared.contracts.costs import COST_RECORDED, CostRecordedV1
from shared.db import Database
from shared.events import Envelope, header_map
from shared.grpc import Authenticator
from shared.kafka import ensure_topics, make_broker
from shared.settings import KafkaSettings
from tests.fake_identity import FakeIdentity, grpc_server

from .conftest import consume

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
        source="gpufleet/scheduler",  # consumers refuse job events from any other producer
        data=jobs.JobEventV1(job=snapshot),
        organization_id=str(org),
    )


@pytest.fixture
async def db(migrate_schema):
    database = Database(await migrate_schema("billing"), "billing", pool_size=4)
    yield database
    await database.dispose()


@pytest.fixture
def deps(db) -> Dependencies:
    return Dependencies(uow=sql_unit_of_work(db))


async def cost_events(db: Database, job_id: uuid.UUID) -> list[CostRecordedV1]:
    async with db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT payload FROM outbox WHERE event_type = :t AND key = :k"),
                {"t": COST_RECORDED, "k": str(job_id)},
            )
        ).all()
    return [CostRecordedV1.model_validate_json(bytes(r.payload)) for r in rows]


async def test_a_finished_job_is_billed_once_even_when_redelivered(db, deps):
    org = uuid.uuid4()
    event = finished(org, ["1.8900", "3.0000"], seconds=120)
    first = await consume(deps, event)
    again = await consume(deps, event)  # redelivery: same event id
    other_id = Envelope(type=event.type, source="test", data=event.data)  # same job, another event id
    third = await consume(deps, other_id)
    assert first is not None and again is None and third is None
    assert first.total == Decimal("0.16300000")  # (1.89 + 3.00) $/h x 120 s / 3600
    (recorded,) = await cost_events(db, event.data.job.job_id)
    assert recorded.total_cost == first.total and recorded.gpu_count == 2 and recorded.held_seconds == 120


class Crash(Exception):
    pass


async def test_a_crash_before_commit_leaves_nothing_and_the_redelivery_bills_once(db, deps):
    """What a SIGKILL between billing's writes and their commit leaves behind: no claim, no lines, no
    event; so the broker's redelivery bills the job, and only once."""
    real = sql_unit_of_work(db)

    @asynccontextmanager
    async def dies_at_commit(**scope):  # type: ignore[no-untyped-def]
        async with real(**scope) as uow:
            yield uow
            raise Crash  # every write of the unit done, the commit not

    event = finished(uuid.uuid4(), ["3.6000"], seconds=3600)
    job_id = event.data.job.job_id
    with pytest.raises(Crash):
        await consume(Dependencies(uow=dies_at_commit), event)
    async with db.transaction(system=True) as s:
        left = (
            await s.execute(
                text(
                    "SELECT (SELECT count(*) FROM processed_events WHERE event_id = :e)"
                    " + (SELECT count(*) FROM cost_tracking WHERE job_id = :j)"
                    " + (SELECT count(*) FROM outbox WHERE key = :k)"
                ),
                {"e": event.id, "j": job_id, "k": str(job_id)},
            )
        ).scalar_one()
    assert left == 0

    billed = await consume(deps, event)
    assert billed is not None and billed.total == Decimal("3.60000000")
    assert await consume(deps, event) is None
    (recorded,) = await cost_events(db, job_id)
    assert recorded.total_cost == billed.total


async def test_non_terminal_and_gpu_less_jobs_record_nothing(db, deps):
    org = uuid.uuid4()
    started = finished(org, ["2"])
    started = Envelope(type=jobs.JOB_STARTED, source="test", data=started.data)
    assert await consume(deps, started) is None
    queued_cancel = finished(org, [], status="failed")
    assert await consume(deps, queued_cancel) is None
    assert await cost_events(db, queued_cancel.data.job.job_id) == []


async def test_grpc_answers_only_the_callers_organization(deps):
    identity = FakeIdentity()
    async with grpc_server(
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, identity)], ["gpufleet.v1.IdentityService"]
    ) as id_target:
        auth = Authenticator(id_target, ttl=0)
        servicer = BillingServicer(deps, auth)
        async with grpc_server(
            [(billing_pb2_grpc.add_BillingServiceServicer_to_server, servicer)],
            ["gpufleet.v1.BillingService"],
        ) as target:
            org_a, org_b = uuid.uuid4(), uuid.uuid4()
            key_a, key_b = identity.key(org_a), identity.key(org_b)
            events = [finished(org_a, ["2.0000"], seconds=s) for s in (60, 1800, 3600)]
            for e in events:
                await consume(deps, e)
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


async def test_consumer_bills_a_job_event_from_the_real_broker(db, deps, kafka):
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka.bootstrap, kafka_idempotent_producer=False, kafka_topic_partitions=3
    )
    await ensure_topics(settings, (topics.JOBS,))
    broker = make_broker(settings, "billing-test")
    register(broker, deps, group_id=f"billing-test-{uuid.uuid4().hex[:6]}")
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
