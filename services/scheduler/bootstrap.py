"""Composition root: wires the adapters into the handlers. Tests pass fakes instead."""

from __future__ import annotations

from shared.db import Database

from .adapters.fleet_catalog import FleetGpuTypeCatalog
from .adapters.repository import SqlUnitOfWorkFactory
from .config import SchedulerSettings
from .service_layer.handlers import Dependencies
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
