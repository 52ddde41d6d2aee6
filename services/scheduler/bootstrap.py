"""Composition root: wires the adapters into the handlers. Tests pass fakes instead.

:func:`bootstrap` builds the handlers' :class:`Dependencies` (what tests need); :func:`bootstrap_app`
adds what the process runs (gRPC servicers, the fleet consumer, the scheduling loop, metrics)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faststream.kafka import KafkaBroker
from gpufleet.v1 import scheduler_pb2_grpc

from shared.db import Database
from shared.grpc import Authenticator

from .adapters import metrics
from .adapters.fleet_catalog import FleetGpuTypeCatalog
from .adapters.repository import SqlUnitOfWorkFactory
from .config import SchedulerSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import SERVICE_NAMES, JobServicer, NodeAgentServicer
from .service_layer.handlers import Dependencies
from .service_layer.scheduling import run_scheduling_loop
from .service_layer.unit_of_work import GpuTypeCatalog, UnitOfWorkFactory
from .service_layer.wakeup import Wakeup


def bootstrap(
    settings: SchedulerSettings | None = None,
    *,
    db: Database | None = None,
    uow: UnitOfWorkFactory | None = None,
    catalog: GpuTypeCatalog | None = None,
    wakeup: Wakeup | None = None,
) -> Dependencies:
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = SqlUnitOfWorkFactory(db)
    if catalog is None:
        if settings is None:
            raise ValueError("bootstrap needs settings or a GPU type catalog")
        catalog = FleetGpuTypeCatalog(
            settings.fleet_grpc_target, ttl=settings.scheduler_gpu_type_cache_seconds
        )
    return Dependencies(uow=uow, catalog=catalog, wakeup=wakeup or Wakeup())


@dataclass(frozen=True)
class SchedulerApp:
    settings: SchedulerSettings
    db: Database
    deps: Dependencies
    auth: Authenticator

    @property
    def grpc_services(self) -> list:
        job_api, agent_api = SERVICE_NAMES
        return [
            (scheduler_pb2_grpc.add_JobServiceServicer_to_server, JobServicer(self.deps, self.auth), job_api),
            (
                scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server,
                NodeAgentServicer(self.deps, self.settings.agent_token.get_secret_value()),
                agent_api,
            ),
        ]

    def register_consumers(self, broker: KafkaBroker) -> None:
        consumers.register(broker, self.deps)

    async def run_scheduling_loop(self, stop: asyncio.Event) -> None:
        def observe(seconds: float, placed: int) -> None:
            metrics.CYCLE_SECONDS.observe(seconds)
            metrics.PLACEMENTS.inc(placed)

        await run_scheduling_loop(
            stop,
            self.deps,
            self.settings.scheduler_tick_seconds,
            observe=observe,
            on_failure=metrics.CYCLE_FAILURES.inc,
        )

    async def measure_jobs(self) -> None:
        await metrics.measure_jobs(self.db)

    async def close(self) -> None:
        close_catalog = getattr(self.deps.catalog, "close", None)
        if close_catalog is not None:
            await close_catalog()


def bootstrap_app(settings: SchedulerSettings, *, db: Database, auth: Authenticator) -> SchedulerApp:
    return SchedulerApp(settings=settings, db=db, deps=bootstrap(settings, db=db), auth=auth)
