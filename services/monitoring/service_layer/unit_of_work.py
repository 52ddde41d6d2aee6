"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL; unit tests use an in-memory fake (tests/unit/monitoring/fakes.py).

One unit of work = one transaction. Ingestion has no processed-events ledger: a sample's identity,
(gpu_id, timestamp), is the table's primary key, so the samples table is its own ledger (see
``handlers.ingest_samples``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.samples import GpuSample
from ..domain.series import SeriesWindow, UtilizationSeries
from ..domain.utilization import GpuUtilization
from .allocation_ports import AllocationStore


@dataclass(frozen=True, slots=True)
class StoredSample:
    """A sample the unit of work inserted, with the organization the allocation history gave it."""

    gpu_id: UUID
    timestamp: datetime
    organization_id: UUID | None


class MonitoringUnitOfWork(Protocol):
    allocations: AllocationStore

    async def add_samples(self, samples: Sequence[GpuSample]) -> list[StoredSample]:
        """Insert, skipping any sample already stored (same GPU, same instant), each with the job and
        organization of the hold covering it (none: unattributed until its allocation arrives); returns
        the new ones. The caller holds the samples' GPU locks."""

    async def utilization(
        self, organization_id: UUID, hours: int, project_id: UUID | None = None
    ) -> list[GpuUtilization]:
        """Per GPU, over the samples of the last ``hours`` taken while ``organization_id``'s jobs held it
        (with ``project_id``: only the jobs whose hold is in that project); ordered by GPU name, then
        id."""

    async def delete_samples_older_than(self, hours: int) -> int:
        """Returns how many were deleted."""

    async def utilization_series(
        self,
        organization_id: UUID,
        window: SeriesWindow,
        gpu_id: UUID | None,
        project_id: UUID | None = None,
    ) -> UtilizationSeries:
        """The samples in ``window`` taken while ``organization_id``'s jobs held the GPU (only
        ``gpu_id``'s when given; with ``project_id``, only that project's jobs'), bucketed per GPU and
        across GPUs."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[MonitoringUnitOfWork]: ...
