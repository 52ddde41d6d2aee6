"""Composition root: wires the database-backed unit of work and settings into the handlers.

Tests build the same :class:`FleetApp` over their own database and settings (or fakes)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from shared.db import Database

from .adapters.repository import sql_unit_of_work
from .config import FleetSettings
from .service_layer import handlers
from .service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("gpufleet.fleet")


@dataclass(frozen=True)
class FleetApp:
    uow: UnitOfWorkFactory
    policy: handlers.RegistrationPolicy
    node_timeout: timedelta
    sweep_interval_seconds: float

    async def sweep_forever(self, stop: asyncio.Event) -> None:
        """The offline sweep, every ``sweep_interval_seconds`` until ``stop``; a failed round is retried."""
        while not stop.is_set():
            try:
                while await handlers.sweep_offline_nodes(self.uow, self.node_timeout) > 0:
                    pass  # a full batch: there may be more
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("offline sweep failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), self.sweep_interval_seconds)
            except TimeoutError:
                pass


def bootstrap(settings: FleetSettings, db: Database, uow: UnitOfWorkFactory | None = None) -> FleetApp:
    return FleetApp(
        uow=uow or sql_unit_of_work(db),
        policy=handlers.RegistrationPolicy(
            unknown_gpu_price_per_hour=settings.fleet_unknown_gpu_price_per_hour,
            heartbeat_interval_seconds=settings.fleet_heartbeat_interval_seconds,
        ),
        node_timeout=timedelta(seconds=settings.fleet_node_timeout_seconds),
        sweep_interval_seconds=settings.fleet_sweep_interval_seconds,
    )
