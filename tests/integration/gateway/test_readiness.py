"""/readyz against fake health servers: what each service and dependency answers, and what it means.

Each test gets its own gateway and its own six gRPC servers that carry only the standard health
service, so a test can take any entry down (or leave a service unreachable, or hanging) without
touching the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.gateway.config import GatewaySettings
from services.gateway.entrypoints.app import create_app
from shared.embedded.postgres import free_port
from shared.readiness import BROKER, DATABASE, OUTBOX, health_name

pytestmark = pytest.mark.integration

SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TIMEOUT = 2.0  # generous: a loaded CI machine must not turn a slow answer into a failed probe


class HangingHealth(health_pb2_grpc.HealthServicer):
    """A service that accepts the call and never answers (a stuck process, not a dead one)."""

    async def Check(self, request, context):
        await asyncio.sleep(3600)


class BrokerProbeHangs(health.aio.HealthServicer):
    """Answers every entry except the broker's, whose probe never returns."""

    async def Check(self, request, context):
        if request.service == health_name(BROKER):
            await asyncio.sleep(3600)
        return await super().Check(request, context)


@dataclass
class Fleet:
    health: dict[str, health.aio.HealthServicer]
    targets: dict[str, str]
    servers: list[grpc.aio.Server]

    async def start(self, name: str, servicer: health_pb2_grpc.HealthServicer | None = None) -> None:
        server = grpc.aio.server()
        if servicer is None:
            servicer = health.aio.HealthServicer()
        if isinstance(servicer, health.aio.HealthServicer):
            self.health[name] = servicer
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        server.add_insecure_port(self.targets[name])
        await server.start()
        self.servers.append(server)

    async def set(self, name: str, entry: str, status: int) -> None:
        await self.health[name].set(entry, status)

    async def publish(self, name: str, dependencies: Iterable[str], status: int = SERVING) -> None:
        for dependency in dependencies:
            await self.set(name, health_name(dependency), status)


async def _fleet(
    *, unreachable: Iterable[str] = (), hanging: Iterable[str] = (), broker_probe_hangs: Iterable[str] = ()
) -> Fleet:
    fleet = Fleet({}, {name: f"127.0.0.1:{free_port()}" for name in SERVICES}, [])
    for name in SERVICES:
        if name in unreachable:
            continue  # nothing listens on its port
        if name in hanging:
            await fleet.start(name, HangingHealth())
        else:
            await fleet.start(name, BrokerProbeHangs() if name in broker_probe_hangs else None)
        if name not in hanging:
            await fleet.set(name, "", SERVING)
    # What the real services publish: identity has a database; the scheduler all three.
    if "identity" in fleet.health:
        await fleet.publish("identity", [DATABASE])
    if "scheduler" in fleet.health:
        await fleet.publish("scheduler", [DATABASE, BROKER, OUTBOX])
    return fleet


@asynccontextmanager
async def gateway(**kw: Iterable[str]) -> AsyncIterator[tuple[Fleet, httpx.AsyncClient]]:
    fleet = await _fleet(**kw)
    t = fleet.targets
    settings = GatewaySettings(
        identity_grpc_target=t["identity"],
        fleet_grpc_target=t["fleet"],
        scheduler_grpc_target=t["scheduler"],
        billing_grpc_target=t["billing"],
        monitoring_grpc_target=t["monitoring"],
        notification_grpc_target=t["notification"],
        gateway_readiness_timeout_seconds=TIMEOUT,
    )
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client,
        ):
            yield fleet, client
    finally:
        for server in fleet.servers:
            await server.stop(None)


ALL_UP = {
    "identity": {"serving": True, "dependencies": {"database": "up"}},
    "fleet": {"serving": True, "dependencies": {}},
    "scheduler": {"serving": True, "dependencies": {"database": "up", "broker": "up", "outbox": "up"}},
    "billing": {"serving": True, "dependencies": {}},
    "monitoring": {"serving": True, "dependencies": {}},
    "notification": {"serving": True, "dependencies": {}},
}


async def test_ready_names_each_service_and_only_the_dependencies_it_has():
    async with gateway() as (_, client):
        r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "services": ALL_UP}


async def test_the_schedulers_broker_down_is_degraded_but_stays_in_rotation():
    async with gateway() as (fleet, client):
        await fleet.set("scheduler", health_name(BROKER), NOT_SERVING)
        r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert body["services"]["scheduler"] == {
        "serving": True,
        "dependencies": {"database": "up", "broker": "down", "outbox": "up"},
    }
    assert {k: v for k, v in body["services"].items() if k != "scheduler"} == {
        k: v for k, v in ALL_UP.items() if k != "scheduler"
    }


async def test_a_service_outside_the_core_not_serving_is_degraded():
    async with gateway() as (fleet, client):
        await fleet.set("notification", "", NOT_SERVING)
        r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert r.json()["services"]["notification"]["serving"] is False


@pytest.mark.parametrize("core", ["identity", "scheduler"])
async def test_a_core_service_not_serving_is_503_with_the_same_report(core):
    async with gateway() as (fleet, client):
        await fleet.set(core, "", NOT_SERVING)
        await fleet.publish(core, [DATABASE], NOT_SERVING)
        r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["services"][core]["serving"] is False
    assert body["services"][core]["dependencies"]["database"] == "down"


async def test_an_unreachable_core_service_is_503_naming_why():
    async with gateway(unreachable=["identity"]) as (_, client):
        r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["services"]["identity"] == {"serving": False, "dependencies": {}, "error": "UNAVAILABLE"}
    assert r.json()["services"]["scheduler"] == ALL_UP["scheduler"]


async def test_hanging_services_are_asked_concurrently_within_the_timeout():
    async with gateway(hanging=["fleet", "billing", "monitoring"]) as (_, client):
        started = time.monotonic()
        r = await client.get("/readyz")
        elapsed = time.monotonic() - started
    # One after the other, 3 services x 4 entries would take 6 s; together, one timeout.
    assert elapsed < 4 * TIMEOUT, elapsed
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    for name in ("fleet", "billing", "monitoring"):
        assert r.json()["services"][name] == {
            "serving": False,
            "dependencies": {},
            "error": "DEADLINE_EXCEEDED",
        }


async def test_a_dependency_probe_that_does_not_answer_is_unknown():
    async with gateway(broker_probe_hangs=["scheduler"]) as (_, client):
        r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    assert r.json()["services"]["scheduler"] == {
        "serving": True,
        "dependencies": {"database": "up", "broker": "unknown", "outbox": "up"},
    }


async def test_liveness_does_not_ask_anyone():
    async with gateway(unreachable=SERVICES) as (_, client):
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
