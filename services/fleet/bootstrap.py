"""Composition root: wires the database-backed unit of work, settings and metrics into the handlers,
and the handlers into the gRPC servicers and the offline sweep (fleet consumes no topic: allocation is
the scheduler's, so fleet has no copy of it to keep).

Tests build the same :class:`FleetApp` over their own database and settings (or fakes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc

from shared.db import Database
from shared.grpc import Authenticator

from .adapters.metrics import PrometheusMetrics
from .adapters.repository import sql_unit_of_work
from .config import FleetSettings
from .entrypoints.grpc_server import FleetServicer, NodeAdminServicer, NodeRegistryServicer
from .service_layer import commands
from .service_layer.handlers import Dependencies, RegistrationPolicy, handle
from .service_layer.unit_of_work import UnitOfWorkFactory

FLEET_SERVICE = fleet_pb2.DESCRIPTOR.services_by_name["FleetService"].full_name
NODE_REGISTRY_SERVICE = fleet_pb2.DESCRIPTOR.services_by_name["NodeRegistryService"].full_name
NODE_ADMIN_SERVICE = fleet_pb2.DESCRIPTOR.services_by_name["NodeAdminService"].full_name

# (add_XServicer_to_server, servicer, full service name): what the gRPC server registers and reports.
GrpcService = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


@dataclass(frozen=True)
class FleetApp:
    deps: Dependencies
    # Tenant- and operator-facing (FleetService, NodeAdminService): GPUFLEET_FLEET_GRPC_LISTEN.
    grpc_services: list[GrpcService]
    # The node agents' (NodeRegistryService): GPUFLEET_FLEET_AGENT_GRPC_LISTEN when set (__main__).
    agent_grpc_services: list[GrpcService]
    # Seconds between two rounds of :meth:`sweep_once` (the runtime schedules them).
    sweep_interval: float
    # Set only when bootstrap made the authenticator itself, so that :meth:`close` closes only its own.
    owned_auth: Authenticator | None = None

    async def sweep_once(self) -> None:
        """One round of the offline sweep (and of the fleet gauges); the runtime repeats it."""
        await handle(commands.SweepOfflineNodes(), self.deps)

    async def close(self) -> None:
        if self.owned_auth is not None:
            await self.owned_auth.close()


def bootstrap(
    settings: FleetSettings,
    *,
    db: Database,
    auth: Authenticator | None = None,
    uow: UnitOfWorkFactory | None = None,
) -> FleetApp:
    owned = None
    if auth is None:
        auth = owned = Authenticator(settings.identity_grpc_target, ttl=settings.auth_cache_seconds)
    deps = Dependencies(
        uow=uow or sql_unit_of_work(db),
        policy=RegistrationPolicy(
            unknown_gpu_price_per_hour=settings.fleet_unknown_gpu_price_per_hour,
            heartbeat_interval_seconds=settings.fleet_heartbeat_interval_seconds,
        ),
        node_timeout=timedelta(seconds=settings.fleet_node_timeout_seconds),
        metrics=PrometheusMetrics(),
        credential_overlap=timedelta(seconds=settings.fleet_credential_overlap_seconds),
    )
    return FleetApp(
        deps=deps,
        grpc_services=[
            (fleet_pb2_grpc.add_FleetServiceServicer_to_server, FleetServicer(deps, auth), FLEET_SERVICE),
            (
                fleet_pb2_grpc.add_NodeAdminServiceServicer_to_server,
                NodeAdminServicer(deps, auth),
                NODE_ADMIN_SERVICE,
            ),
        ],
        agent_grpc_services=[
            (
                fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server,
                NodeRegistryServicer(deps),
                NODE_REGISTRY_SERVICE,
            ),
        ],
        sweep_interval=settings.fleet_sweep_interval_seconds,
        owned_auth=owned,
    )
