"""Monitoring use cases: store sample batches, answer utilization, enforce retention."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.handlers import dispatch

from ..adapters import metrics
from ..domain.allocations import claim_disputed
from ..domain.samples import GpuSample
from ..domain.series import UtilizationSeries, series_window
from ..domain.utilization import Utilization, window_hours
from . import commands
from .unit_of_work import StoredSample, UnitOfWorkFactory

log = logging.getLogger("gpufleet.monitoring")


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory


async def ingest_samples(cmd: commands.IngestSamples, deps: Dependencies) -> int:
    """Insert every sample of a consumed batch in one statement; returns how many were new.

    No processed-events ledger here, unlike every other consumer: a sample's natural key,
    (gpu_id, timestamp), is the table's primary key, so a redelivered record inserts nothing
    (ON CONFLICT DO NOTHING) and the table itself is the ledger. Claiming event ids would add a second
    write per record and a table growing as fast as the samples, for no extra safety; without it the hot
    path is one round trip per batch, which is what fleet-scale ingestion needs (two with the lock).
    Whose a sample is comes from the allocation history (the hold covering it), under the GPUs' locks
    so that an allocation batch committing at the same time is either seen here or sees these samples
    (service_layer/allocation_ports.py). The agent's claim is only compared, for a warning.
    """
    if not cmd.samples:
        return 0
    started = time.perf_counter()
    async with deps.uow(system=True) as uow:
        await uow.allocations.lock_gpus(s.gpu_id for s in cmd.samples)
        stored = await uow.add_samples(cmd.samples)
    metrics.INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
    metrics.INGEST_BATCH_SIZE.observe(len(cmd.samples))
    metrics.SAMPLES_INGESTED.inc(len(stored))
    _count_claims(cmd.samples, stored)
    return len(stored)


def _count_claims(samples: tuple[GpuSample, ...], stored: list[StoredSample]) -> None:
    claims = {(s.gpu_id, s.timestamp): s for s in samples}
    disputed: list[GpuSample] = []
    unattributed = 0
    for row in stored:
        unattributed += row.organization_id is None
        claim = claims.get((row.gpu_id, row.timestamp))
        if claim is not None and claim_disputed(claim.claimed_organization_id, row.organization_id):
            disputed.append(claim)
    metrics.SAMPLES_UNATTRIBUTED.inc(unattributed)
    if disputed:
        metrics.SAMPLES_CLAIM_DISPUTED.inc(len(disputed))
        log.warning(
            "agents named another organization than the allocation for some samples; stored as allocated",
            extra={"samples": len(disputed), "node_id": str(disputed[0].node_id)},
        )


async def get_utilization(cmd: commands.GetUtilization, deps: Dependencies) -> Utilization:
    """Per GPU, the organization's usage over the last ``hours`` (0: the default day); idle samples and
    other organizations' samples never count, nor, for a project-bound key, other projects' jobs'."""
    window = window_hours(cmd.hours)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        gpus = await uow.utilization(cmd.organization_id, window, cmd.project_id)
    return Utilization(hours=window, gpus=gpus)


async def get_utilization_series(cmd: commands.GetUtilizationSeries, deps: Dependencies) -> UtilizationSeries:
    """Per GPU and across them, the organization's utilization in buckets (domain/series.py); for a
    project-bound key, over its project's jobs' samples only."""
    window = series_window(cmd.start, cmd.end, cmd.step_seconds, datetime.now(UTC))
    async with deps.uow(org_id=cmd.organization_id) as uow:
        return await uow.utilization_series(cmd.organization_id, window, cmd.gpu_id, cmd.project_id)


async def prune_samples(cmd: commands.PruneSamples, deps: Dependencies) -> int:
    """Cross-tenant housekeeping (system scope): raw samples past retention are deleted."""
    if cmd.retention_hours < 1:
        raise ValueError("retention_hours must be at least 1")  # settings refuse it: a wiring bug
    async with deps.uow(system=True) as uow:
        deleted = await uow.delete_samples_older_than(cmd.retention_hours)
        await uow.allocations.delete_ended_before(cmd.retention_hours)  # they cover no sample kept
    return deleted


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.IngestSamples: ingest_samples,
    commands.GetUtilization: get_utilization,
    commands.GetUtilizationSeries: get_utilization_series,
    commands.PruneSamples: prune_samples,
}


async def handle(cmd: object, deps: Dependencies) -> Any:
    """Run the handler registered for ``cmd``'s type."""
    return await dispatch(HANDLERS, cmd, deps)
