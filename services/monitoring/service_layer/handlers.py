"""Monitoring use cases: store sample batches, answer utilization, enforce retention."""

from __future__ import annotations

from uuid import UUID

from shared.contracts.metrics import GpuMetricsSampledV1
from shared.db import Database
from shared.events import Envelope

from ..adapters import repository
from ..domain.utilization import GpuUtilization, window_hours


async def store_samples(db: Database, envelopes: list[Envelope]) -> int:
    """Insert every sample of a consumed batch in one statement; returns how many were new.

    No processed-events ledger here, unlike every other consumer: a sample's natural key,
    (gpu_id, timestamp), is the table's primary key, so a redelivered record inserts nothing
    (ON CONFLICT DO NOTHING) and the table itself is the ledger. Claiming event ids would add a second
    write per record and a table growing as fast as the samples, for no extra safety; without it the hot
    path is one round trip per batch, which is what fleet-scale ingestion needs."""
    records = [e.data for e in envelopes if isinstance(e.data, GpuMetricsSampledV1)]
    async with db.transaction(system=True) as session:
        return await repository.insert_samples(session, records)


async def get_utilization(db: Database, org_id: UUID, hours: int) -> tuple[int, list[GpuUtilization]]:
    """Per GPU, the organization's usage over the last ``hours`` (0: the default day); idle samples and
    other organizations' samples never count."""
    window = window_hours(hours)
    async with db.transaction(org_id=org_id) as session:
        return window, await repository.utilization(session, org_id, window)


async def delete_expired_samples(db: Database, retention_hours: int) -> int:
    """Cross-tenant housekeeping (system scope): raw samples past retention are deleted."""
    async with db.transaction(system=True) as session:
        return await repository.delete_older_than(session, retention_hours)
