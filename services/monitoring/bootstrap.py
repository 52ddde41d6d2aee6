"""Composition root: wires the database, the identity client and the settings into the pieces the
monitoring process runs (metrics consumer, retention loop, gRPC servicer). Tests build the same
:class:`MonitoringApp` over their own database and a fake identity."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from faststream.kafka import KafkaBroker

from shared.db import Database
from shared.grpc import Authenticator

from .config import MonitoringSettings
from .entrypoints import consumers
from .entrypoints.grpc_server import MonitoringServicer
from .service_layer import handlers

log = logging.getLogger("gpufleet.monitoring")


@dataclass(frozen=True)
class MonitoringApp:
    db: Database
    servicer: MonitoringServicer
    retention_hours: int
    sweep_interval_seconds: float

    def register_consumers(self, broker: KafkaBroker, *, group_id: str = consumers.CONSUMER) -> None:
        consumers.register(broker, self.db, group_id=group_id)

    async def retention_forever(self, stop: asyncio.Event) -> None:
        """Delete expired samples every ``sweep_interval_seconds`` until ``stop``; a failed round is
        logged and retried next time (the data only waits a little longer to go)."""
        while not stop.is_set():
            try:
                deleted = await handlers.delete_expired_samples(self.db, self.retention_hours)
                if deleted:
                    log.info(
                        "deleted expired samples",
                        extra={"samples": deleted, "retention_hours": self.retention_hours},
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention sweep failed; trying again later")
            try:
                await asyncio.wait_for(stop.wait(), self.sweep_interval_seconds)
            except TimeoutError:
                pass


def bootstrap(settings: MonitoringSettings, db: Database, auth: Authenticator) -> MonitoringApp:
    return MonitoringApp(
        db=db,
        servicer=MonitoringServicer(db, auth),
        retention_hours=settings.monitoring_retention_hours,
        sweep_interval_seconds=settings.monitoring_retention_sweep_seconds,
    )
