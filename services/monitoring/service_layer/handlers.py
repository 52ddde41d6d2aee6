"""Monitoring use cases: store sample batches, answer utilization, enforce retention."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from shared.contracts.metrics import GpuMetricsSampledV1
from shared.db import Database
from shared.events import Envelope

from ..adapters import repository
from ..domain.utilization import GpuUtilization, window_hours

log = logging.getLogger("gpufleet.monitoring")


async def store_samples(db: Database, envelopes: list[Envelope]) -> int:
    """Insert every sample of a consumed batch in one statement.

    No processed-events ledger here: a sample's natural key, (gpu_id, timestamp), is the primary key, so
    a redelivered record inserts nothing (ON CONFLICT DO NOTHING). That keeps the hot path to one
    round trip per batch, which is what fleet-scale ingestion needs."""
    batches = [e.data for e in envelopes if isinstance(e.data, GpuMetricsSampledV1)]
    async with db.transaction(system=True) as session:
        return await repository.insert_samples(session, batches)


async def get_utilization(db: Database, org_id: UUID, hours: int) -> tuple[int, list[GpuUtilization]]:
    window = window_hours(hours)
    async with db.transaction(org_id=org_id) as session:
        return window, await repository.utilization(session, window)


async def retention_loop(db: Database, stop: asyncio.Event, hours: int, every_seconds: float) -> None:
    while not stop.is_set():
        try:
            async with db.transaction(system=True) as session:
                deleted = await repository.delete_older_than(session, hours)
            if deleted:
                log.info("deleted expired samples", extra={"samples": deleted, "retention_hours": hours})
        except Exception:
            log.exception("retention sweep failed; trying again later")
        try:
            await asyncio.wait_for(stop.wait(), every_seconds)
        except TimeoutError:
            pass
