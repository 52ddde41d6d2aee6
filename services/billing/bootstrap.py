"""Composition root: wires the database-backed unit of work and the identity client into the handlers,
the job-event consumer and the gRPC servicer. The runtime (``__main__``) runs them, and the outbox relay
that publishes the cost events; tests build the same :class:`BillingApp` over their own database, or a
fake unit of work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from faststream.kafka import KafkaBroker
from gpufleet.v1 import billing_pb2_grpc

from shared.contracts import topics
from shared.db import Database
from shared.grpc import Authenticator

from .adapters.repository import sql_unit_of_work
from .config import BillingSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAME, BillingServicer
from .service_layer import commands
from .service_layer.handlers import CONSUMER, RUNNING_TOMBSTONE_HOURS, Dependencies, handle
from .service_layer.unit_of_work import UnitOfWorkFactory

# (add_XServicer_to_server, servicer, full service name): what the runtime's gRPC server mounts.
GrpcService = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


@dataclass(frozen=True)
class BillingApp:
    deps: Dependencies
    grpc_services: list[GrpcService] = field(default_factory=list)

    def register_consumers(
        self, broker: KafkaBroker, *, topic: str = topics.JOBS, group_id: str = CONSUMER
    ) -> None:
        consumers.register(broker, self.deps, topic=topic, group_id=group_id)

    async def prune_once(self) -> None:
        """One round of deleting the tombstones of attempts that ended long ago (the runtime repeats it)."""
        await handle(commands.PruneEndedRunning(RUNNING_TOMBSTONE_HOURS), self.deps)


def bootstrap(
    settings: BillingSettings,
    *,
    db: Database | None,
    auth: Authenticator,
    uow: UnitOfWorkFactory | None = None,
) -> BillingApp:
    """``uow`` replaces the PostgreSQL unit of work (tests); otherwise ``db`` is required. ``settings``
    is part of every service's bootstrap signature; billing has no tunables of its own yet."""
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = sql_unit_of_work(db)
    deps = Dependencies(uow=uow)
    servicer = BillingServicer(deps, auth)
    return BillingApp(
        deps=deps,
        grpc_services=[(billing_pb2_grpc.add_BillingServiceServicer_to_server, servicer, SERVICE_NAME)],
    )
