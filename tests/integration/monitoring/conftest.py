"""Monitoring in-process: its gRPC servicer on a free port over the real PostgreSQL, with the fake identity
mapping test keys to principals (tests/fake_identity.py), plus a builder of agents' metric records."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from gpufleet.v1 import identity_pb2_grpc, monitoring_pb2_grpc
from sqlalchemy import text

from services.monitoring.bootstrap import MonitoringApp, bootstrap
from services.monitoring.config import MonitoringSettings
from services.monitoring.entrypoints.consumers import to_command
from services.monitoring.entrypoints.grpc_server import SERVICE_NAMES
from services.monitoring.service_layer.handlers import Dependencies, handle
from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1, GpuSampleV1
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.events import Envelope
from shared.grpc import Authenticator, channel, serve
from tests.fake_identity import FakeIdentity


@dataclass
class Monitoring:
    db: Database
    settings: MonitoringSettings
    identity: FakeIdentity
    app: MonitoringApp
    stub: monitoring_pb2_grpc.MonitoringServiceStub

    async def rows(self, sql: str, *, org: uuid.UUID | None = None, **params: Any) -> list:
        """Run ``sql`` as the tenant ``org``, or in system scope when ``org`` is None."""
        scope: dict[str, Any] = {"org_id": org} if org else {"system": True}
        async with self.db.transaction(**scope) as s:
            return list((await s.execute(text(sql), params)).all())

    async def consume(self, batch: list[Envelope]) -> int:
        return await consume(self.app.deps, batch)


async def consume(deps: Dependencies, batch: list[Envelope]) -> int:
    """What the metrics consumer does with one batch (converter, then handler), minus the broker; how
    many samples were new."""
    cmd = to_command(batch)
    return 0 if cmd is None else await handle(cmd, deps)


@pytest.fixture(scope="session")
async def identity() -> AsyncIterator[tuple[FakeIdentity, str]]:
    fake = FakeIdentity()
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, fake)],
        ["gpufleet.v1.IdentityService"],
    )
    yield fake, target
    await server.stop(None)


@pytest.fixture(scope="session")
async def monitoring(migrate_schema, identity) -> AsyncIterator[Monitoring]:
    fake, identity_target = identity
    url = await migrate_schema("monitoring")
    settings = MonitoringSettings(
        monitoring_database_url=url,
        kafka_bootstrap_servers="127.0.0.1:1",  # tests that need the broker override it
        identity_grpc_target=identity_target,
        auth_cache_seconds=0,
    )
    db = Database(url, "monitoring", pool_size=4)
    auth = Authenticator(identity_target, ttl=0)
    app = bootstrap(settings, db=db, auth=auth)
    listen = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        listen, [(add, servicer) for add, servicer, _ in app.grpc_services], SERVICE_NAMES
    )
    client = channel(listen)
    yield Monitoring(db, settings, fake, app, monitoring_pb2_grpc.MonitoringServiceStub(client))
    await client.close()
    await server.stop(None)
    await auth.close()
    await db.dispose()


def record(
    samples: list[tuple[uuid.UUID, uuid.UUID | None, float, datetime]], node: uuid.UUID | None = None
) -> Envelope:
    """One node's record: (gpu id, holding organization or None when idle, utilization %, time) per sample."""
    return Envelope(
        type=GPU_METRICS_SAMPLED,
        source="gpufleet/agent",
        data=GpuMetricsSampledV1(
            node_id=node or uuid.uuid4(),
            samples=[
                GpuSampleV1(
                    gpu_id=gpu_id,
                    gpu_name=f"GPU {i}",
                    gpu_type="a100",
                    timestamp=at,
                    gpu_utilization=util,
                    memory_used_mb=int(util) * 100,
                    memory_total_mb=40_960,
                    power_usage_w=200.0,
                    temperature_c=60.0,
                    organization_id=org,
                    job_id=uuid.uuid4() if org else None,
                )
                for i, (gpu_id, org, util, at) in enumerate(samples)
            ],
        ),
    )
