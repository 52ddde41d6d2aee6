"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL, adapters/fleet_catalog.py the GPU type catalog over gRPC; unit tests use in-memory fakes.

One unit of work = one transaction: a job's change, its status-history entries, the outbox events it
recorded, GPU allocations and consumer claims commit together or not at all."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.inventory import InventoryGpu
from ..domain.model import Job, JobStatus
from ..domain.placement import FreeGpu


class SchedulerUnitOfWork(Protocol):
    async def now(self) -> datetime:
        """The clock of record (the database's, so every replica agrees)."""

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        """Insert a new job with its history and events, and the ``fingerprint`` of the request that
        created it. False (nothing written) when the job's idempotency key is already taken in its
        organization."""

    async def job_by_idempotency_key(self, organization_id: UUID, key: str) -> tuple[Job, str | None] | None:
        """The job created with ``key`` and its request's fingerprint (None: stored before
        fingerprints were kept)."""

    async def get_job(
        self, job_id: UUID, *, for_update: bool = False, with_history: bool = False
    ) -> Job | None:
        """A job the unit's scope may see (row-level security hides other organizations' jobs)."""

    async def list_jobs(
        self, status: JobStatus | None, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Job]:
        """Newest first, strictly older than ``before`` (created_at, id) when given."""

    async def save_job(self, job: Job) -> None:
        """Write the job's state, its new history entries and its recorded events (to the outbox)."""

    async def lead_scheduling(self) -> bool:
        """True when this transaction is the one active scheduler (others skip their round)."""

    async def queued_jobs(self, limit: int) -> list[Job]:
        """Queued jobs in queue order, locked; rows another transaction holds are skipped."""

    async def free_gpus(self) -> list[FreeGpu]:
        """GPUs fleet reports available that no job holds."""

    async def hold_gpus(self, job: Job) -> None:
        """Record the job's allocation; the database refuses a GPU that is already held."""

    async def release_gpus(self, job_id: UUID) -> None: ...

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        """The job if it was placed on that node, locked for update."""

    async def live_jobs_on_node(self, node_id: UUID) -> list[Job]:
        """Scheduled and running jobs of the node, oldest first."""

    async def upsert_gpu(self, gpu: InventoryGpu) -> bool:
        """Apply a fleet snapshot unless we already hold that revision or a newer one."""

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        """False when ``consumer`` has processed ``event_id`` before."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[SchedulerUnitOfWork]: ...


class GpuTypeCatalog(Protocol):
    """Names of the GPU types fleet's catalog knows. ``authorization`` is the caller's own metadata
    value, forwarded so that fleet authorizes the lookup as the caller."""

    async def names(self, authorization: str | None) -> frozenset[str]: ...
