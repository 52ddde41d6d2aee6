"""The gateway against in-process fake services, one gRPC server each on a free loopback port.

No PostgreSQL or broker: the app is driven over ASGI with httpx, its lifespan run by the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from gpufleet.v1 import (
    billing_pb2_grpc,
    fleet_pb2_grpc,
    identity_pb2_grpc,
    monitoring_pb2_grpc,
    notification_pb2_grpc,
    scheduler_pb2_grpc,
)
from grpc_health.v1 import health

from services.gateway.config import GatewaySettings
from services.gateway.entrypoints.app import create_app
from shared.embedded.postgres import free_port
from shared.grpc import serve
from tests.integration.gateway import fakes


@dataclass
class FakeServices:
    rec: fakes.Recorder
    identity: fakes.FakeIdentity
    targets: dict[str, str]
    health: dict[str, health.aio.HealthServicer]


_SERVICERS = {
    "identity": (
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        fakes.FakeIdentity,
        "gpufleet.v1.IdentityService",
    ),
    "fleet": (fleet_pb2_grpc.add_FleetServiceServicer_to_server, fakes.FakeFleet, "gpufleet.v1.FleetService"),
    "scheduler": (
        scheduler_pb2_grpc.add_JobServiceServicer_to_server,
        fakes.FakeScheduler,
        "gpufleet.v1.JobService",
    ),
    "billing": (
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        fakes.FakeBilling,
        "gpufleet.v1.BillingService",
    ),
    "monitoring": (
        monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server,
        fakes.FakeMonitoring,
        "gpufleet.v1.MonitoringService",
    ),
    "notification": (
        notification_pb2_grpc.add_NotificationServiceServicer_to_server,
        fakes.FakeNotification,
        "gpufleet.v1.NotificationService",
    ),
}


@pytest.fixture(scope="package")
async def services() -> AsyncIterator[FakeServices]:
    rec = fakes.Recorder()
    servers, targets, healths, identity = [], {}, {}, None
    for name, (add, cls, full_name) in _SERVICERS.items():
        servicer = cls(rec)
        identity = servicer if name == "identity" else identity
        targets[name] = f"127.0.0.1:{free_port()}"
        server, health_servicer = await serve(targets[name], [(add, servicer)], [full_name])
        servers.append(server)
        healths[name] = health_servicer
    assert isinstance(identity, fakes.FakeIdentity)
    yield FakeServices(rec, identity, targets, healths)
    for server in servers:
        await server.stop(None)


@pytest.fixture(scope="package")
async def app(services: FakeServices) -> AsyncIterator:
    t = services.targets
    settings = GatewaySettings(
        identity_grpc_target=t["identity"],
        fleet_grpc_target=t["fleet"],
        scheduler_grpc_target=t["scheduler"],
        billing_grpc_target=t["billing"],
        monitoring_grpc_target=t["monitoring"],
        notification_grpc_target=t["notification"],
        gateway_readiness_timeout_seconds=2.0,
        auth_cache_seconds=1,  # the caching test must not depend on how fast this machine is
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def rec(services: FakeServices) -> fakes.Recorder:
    services.rec.reset()
    return services.rec


@pytest.fixture
async def api(app, rec) -> AsyncIterator[httpx.AsyncClient]:
    """Authenticated with the test key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"Authorization": f"Bearer {fakes.TEST_KEY}"},
    ) as client:
        yield client


@pytest.fixture
async def anon(app, rec) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield client
