"""Monitoring against real PostgreSQL: batched, idempotent ingestion; utilization per organization."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from gpufleet.v1 import identity_pb2_grpc, monitoring_pb2, monitoring_pb2_grpc

from services.monitoring.adapters.repository import sql_unit_of_work
from services.monitoring.entrypoints.grpc_server import MonitoringServicer
from services.monitoring.service_layer.handlers import Dependencies
from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1, GpuSampleV1
from shared.db import Database
from shared.events import Envelope
from shared.grpc import Authenticator
from tests.fake_identity import FakeIdentity, grpc_server

from .conftest import consume

pytestmark = pytest.mark.integration


NODE = uuid.uuid4()


def tick(gpus: list[tuple[uuid.UUID, uuid.UUID | None, float]], at: datetime) -> Envelope:
    """One node's record: (gpu id, the organization the agent claims or None, utilization) per GPU."""
    return Envelope(
        type=GPU_METRICS_SAMPLED,
        source="test",
        data=GpuMetricsSampledV1(
            node_id=NODE,
            samples=[
                GpuSampleV1(
                    gpu_id=g,
                    gpu_name=f"n-gpu{i}",
                    gpu_type="a100-80gb",
                    timestamp=at,
                    gpu_utilization=u,
                    memory_used_mb=1000 * (i + 1),
                    memory_total_mb=81920,
                    power_usage_w=250.5,
                    temperature_c=61.0,
                    organization_id=org,
                    job_id=uuid.uuid4() if org else None,
                )
                for i, (g, org, u) in enumerate(gpus)
            ],
        ),
    )


@pytest.fixture
async def db(migrate_schema):
    database = Database(await migrate_schema("monitoring"), "monitoring", pool_size=4)
    yield database
    await database.dispose()


async def test_samples_are_stored_once_and_utilization_is_per_organization(db, monitoring):
    deps = Dependencies(uow=sql_unit_of_work(db))
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    g1, g2, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC).replace(microsecond=0)
    # The same database as the monitoring fixture's (one schema per session): its job-topic handler.
    await monitoring.allocate([g1], org_a, NODE, now - timedelta(hours=31))
    await monitoring.allocate([g2], org_b, NODE, now - timedelta(hours=1))
    batch = [
        tick([(g1, org_a, 50.0), (g2, org_b, 90.0), (idle, None, 0.0)], now - timedelta(seconds=s))
        for s in (1, 2)
    ]
    assert await consume(deps, batch) == 6
    assert await consume(deps, batch) == 0  # redelivered batch: nothing new
    old = tick([(g1, org_a, 100.0)], now - timedelta(hours=30))
    await consume(deps, [old])

    identity = FakeIdentity()
    async with grpc_server(
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, identity)], ["gpufleet.v1.IdentityService"]
    ) as id_target:
        auth = Authenticator(id_target, ttl=0)
        async with grpc_server(
            [(monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, MonitoringServicer(deps, auth))],
            ["gpufleet.v1.MonitoringService"],
        ) as target:
            async with grpc.aio.insecure_channel(target) as ch:
                stub = monitoring_pb2_grpc.MonitoringServiceStub(ch)
                day = await stub.GetUtilization(
                    monitoring_pb2.GetUtilizationRequest(), metadata=identity.key(org_a)
                )
                assert day.hours == 24
                (only,) = day.gpus  # not B's GPU, not the idle one, not the 30-hour-old sample
                assert only.gpu_id == str(g1) and only.samples == 2 and only.avg_utilization == 50.0
                week = await stub.GetUtilization(
                    monitoring_pb2.GetUtilizationRequest(hours=48), metadata=identity.key(org_a)
                )
                assert week.gpus[0].samples == 3 and week.gpus[0].max_utilization == 100.0
                b = await stub.GetUtilization(
                    monitoring_pb2.GetUtilizationRequest(), metadata=identity.key(org_b)
                )
                assert [g.gpu_id for g in b.gpus] == [str(g2)]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetUtilization(
                        monitoring_pb2.GetUtilizationRequest(hours=10_000), metadata=identity.key(org_a)
                    )
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await auth.close()
