"""The node agents' NodeRegistryService on a listener of its own (GPUFLEET_FLEET_AGENT_GRPC_LISTEN), apart
from the tenant- and operator-facing FleetService and NodeAdminService: each works only on its own port,
the other answers UNIMPLEMENTED; unset, one port serves both, as before. The whole process
(``services.fleet.__main__.build``) over the harness's PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
import pytest
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.fleet.__main__ import build
from services.fleet.config import FleetSettings
from shared.embedded.postgres import free_port
from shared.grpc import with_key

from ..listeners import code_of
from ..listeners import running as listeners_running
from .conftest import OPERATOR, Fleet
from .test_registry import node_request

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
TENANT_SERVICES = {"gpufleet.v1.FleetService", "gpufleet.v1.NodeAdminService"}
AGENT_SERVICES = {"gpufleet.v1.NodeRegistryService"}


def _settings(fleet: Fleet, kafka: Any, agent_listen: str) -> FleetSettings:
    return fleet.settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_topic_partitions": 3,
            "fleet_grpc_listen": f"127.0.0.1:{free_port()}",
            "fleet_agent_grpc_listen": agent_listen,
        }
    )


def running(settings: FleetSettings) -> AbstractAsyncContextManager[None]:
    listeners = [(settings.fleet_grpc_listen, "gpufleet.v1.FleetService")]
    if settings.fleet_agent_grpc_listen:
        listeners.append((settings.fleet_agent_grpc_listen, "gpufleet.v1.NodeRegistryService"))
    return listeners_running(build(settings), listeners)


async def _listed(ch: grpc.aio.Channel) -> set[str]:
    """The gpufleet services the server offers, by reflection."""

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    stub = reflection_pb2_grpc.ServerReflectionStub(ch)  # type: ignore[no-untyped-call]
    async for reply in stub.ServerReflectionInfo(ask(), timeout=10):
        return {s.name for s in reply.list_services_response.service if s.name.startswith("gpufleet.")}
    return set()


async def test_with_an_agent_listener_each_side_answers_only_on_its_own_port(fleet: Fleet, kafka) -> None:
    settings = _settings(fleet, kafka, f"127.0.0.1:{free_port()}")
    key = fleet.identity.new_key()
    async with (
        running(settings),
        grpc.aio.insecure_channel(settings.fleet_grpc_listen) as tenant_ch,
        grpc.aio.insecure_channel(settings.fleet_agent_grpc_listen) as agent_ch,
    ):
        admin = fleet_pb2_grpc.NodeAdminServiceStub(tenant_ch)
        inventory = fleet_pb2_grpc.FleetServiceStub(tenant_ch)
        registry = fleet_pb2_grpc.NodeRegistryServiceStub(agent_ch)

        # The tenant/operator port: inventory and join tokens, no registry.
        await inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(key))
        token = (await admin.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest(), metadata=OPERATOR)).token
        on_tenant = fleet_pb2_grpc.NodeRegistryServiceStub(tenant_ch)
        code = await code_of(on_tenant.RegisterNode(node_request(), metadata=with_key(token)))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        ask = fleet_pb2.AuthenticateNodeRequest(credential="gpfn_x")
        assert await code_of(on_tenant.AuthenticateNode(ask)) == grpc.StatusCode.UNIMPLEMENTED

        # The agent port: the registry (the token was not spent by the refused call), nothing else.
        joined = await registry.RegisterNode(node_request(), metadata=with_key(token))
        credential = joined.node_credential.credential
        beat = fleet_pb2.HeartbeatRequest(node_id=joined.node_id)
        await registry.Heartbeat(beat, metadata=with_key(credential))
        known = await registry.AuthenticateNode(fleet_pb2.AuthenticateNodeRequest(credential=credential))
        assert known.node_id == joined.node_id
        on_agent = fleet_pb2_grpc.FleetServiceStub(agent_ch)
        code = await code_of(on_agent.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(key)))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        admin_on_agent = fleet_pb2_grpc.NodeAdminServiceStub(agent_ch)
        code = await code_of(
            admin_on_agent.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest(), metadata=OPERATOR)
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED

        # Each listener has its own health and reflection, naming only its own services.
        assert await _listed(tenant_ch) == TENANT_SERVICES
        assert await _listed(agent_ch) == AGENT_SERVICES
        for ch, unknown in (
            (tenant_ch, "gpufleet.v1.NodeRegistryService"),
            (agent_ch, "gpufleet.v1.FleetService"),
        ):
            health = health_pb2_grpc.HealthStub(ch)
            assert (await health.Check(health_pb2.HealthCheckRequest(service=""))).status == SERVING
            code = await code_of(health.Check(health_pb2.HealthCheckRequest(service=unknown)))
            assert code == grpc.StatusCode.NOT_FOUND


async def test_without_an_agent_listener_one_port_serves_both_and_says_so(
    fleet: Fleet, kafka, caplog
) -> None:
    settings = _settings(fleet, kafka, "")
    key = fleet.identity.new_key()
    with caplog.at_level(logging.WARNING, logger="gpufleet.runtime"):
        async with running(settings), grpc.aio.insecure_channel(settings.fleet_grpc_listen) as ch:
            await fleet_pb2_grpc.FleetServiceStub(ch).ListGpus(
                fleet_pb2.ListGpusRequest(), metadata=with_key(key)
            )
            token = (
                await fleet_pb2_grpc.NodeAdminServiceStub(ch).CreateJoinToken(
                    fleet_pb2.CreateJoinTokenRequest(), metadata=OPERATOR
                )
            ).token
            joined = await fleet_pb2_grpc.NodeRegistryServiceStub(ch).RegisterNode(
                node_request(), metadata=with_key(token)
            )
            assert joined.node_credential.credential.startswith("gpfn_")
            assert await _listed(ch) == TENANT_SERVICES | AGENT_SERVICES
    said = [r for r in caplog.records if "share the tenant-facing gRPC listener" in r.getMessage()]
    assert len(said) == 1
    assert said[0].setting == "GPUFLEET_FLEET_AGENT_GRPC_LISTEN"  # type: ignore[attr-defined]
