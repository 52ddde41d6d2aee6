"""Composition root: wires the database-backed unit of work and the identity client into the handlers,
the metrics consumer, the gRPC servicer and the retention round. The runtime (``__main__``) runs them;
tests build the same :class:`MonitoringApp` over their own database, or a fake unit of work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from faststream.kafka import KafkaBroker
from gpufleet.v1 import monitoring_pb2_grpc

from shared.consumers import RecordVerifier
from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator

from .adapters.repository import sql_unit_of_work
from .config import MonitoringSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAME, MonitoringServicer
from .service_layer import commands
from .service_layer.handlers import Dependencies, handle
from .service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("gpufleet.monitoring")

# (add_XServicer_to_server, servicer, full service name): what the runtime's gRPC server mounts.
GrpcService = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


@dataclass(frozen=True)
class MonitoringApp:
    deps: Dependencies
    retention_hours: int
    prune_every_seconds: float  # how often the runtime should call prune_once
    grpc_services: list[GrpcService] = field(default_factory=list)
    verifier: RecordVerifier | None = None  # the agents' signatures (None: not checked)

    def register_consumers(
        self, broker: KafkaBroker, *, topic: str = topics.METRICS, group_id: str = consumers.CONSUMER
    ) -> None:
        consumers.register(broker, self.deps, topic=topic, group_id=group_id, verify=self.verifier)

    async def prune_once(self) -> None:
        """One retention round: delete the samples past ``retention_hours``. The runtime repeats it
        and logs a failed round; the data then only waits a little longer to go."""
        deleted: int = await handle(commands.PruneSamples(self.retention_hours), self.deps)
        if deleted:
            log.info(
                "deleted expired samples", extra={"samples": deleted, "retention_hours": self.retention_hours}
            )


def bootstrap(
    settings: MonitoringSettings,
    *,
    db: Database | None,
    auth: Authenticator,
    uow: UnitOfWorkFactory | None = None,
    verifier: RecordVerifier | None = None,
) -> MonitoringApp:
    """``uow`` replaces the PostgreSQL unit of work (tests); otherwise ``db`` is required."""
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = sql_unit_of_work(db)
    deps = Dependencies(uow=uow)
    servicer = MonitoringServicer(deps, auth)
    return MonitoringApp(
        deps=deps,
        retention_hours=settings.monitoring_retention_hours,
        prune_every_seconds=settings.monitoring_retention_sweep_seconds,
        grpc_services=[(monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, servicer, SERVICE_NAME)],
        verifier=verifier,
    )
