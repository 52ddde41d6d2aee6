"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL, adapters/fleet_catalog.py the GPU type catalog over gRPC; unit tests use in-memory fakes.

One unit of work = one transaction: a job's change, its status-history entries, the outbox events it
recorded, GPU allocations and consumer claims commit together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from shared.contracts.audit import AuditRecordedV1
from shared.events import Envelope

from ..domain.engine import Shape
from ..domain.inventory import InventoryGpu
from ..domain.model import Job, JobStatus
from .assignments import NodeVersion


@dataclass(frozen=True)
class UsageRow:
    """Decayed resource-seconds (as of now) of finished runs of one (organization, project, user,
    GPU type)."""

    organization_id: UUID
    user_id: UUID | None
    gpu_type: str | None
    gpu_s: float
    cpu_s: float
    ram_mb_s: float
    project_id: UUID | None = None  # the runs' project (None: none)


class SchedulerUnitOfWork(Protocol):
    async def record_audit(self, *envelopes: Envelope[AuditRecordedV1]) -> None:
        """Add audit records (service_layer/audit.py) to the outbox in this unit's transaction."""

    async def now(self) -> datetime:
        """The clock of record (the database's, so every replica agrees)."""

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        """Insert a new job with its history and events, and the ``fingerprint`` of the request that
        created it. False (nothing written) when the job's idempotency key is already taken in its
        organization."""

    async def add_jobs(
        self, jobs: list[tuple[Job, str | None]], *, audit: Sequence[Envelope[AuditRecordedV1]] = ()
    ) -> None:
        """Insert new jobs that carry no idempotency key, each with its request's fingerprint, with
        their history and events, in one statement each; ``audit`` records go out with the events,
        in the same statement (as :meth:`record_audit` would write them)."""

    async def add_keyed_jobs(
        self, jobs: list[tuple[Job, str | None]], *, audit: Sequence[Envelope[AuditRecordedV1]] = ()
    ) -> bool:
        """Insert new jobs that each carry an idempotency key (a keyed batch), all or none, as
        :meth:`add_jobs` writes them. False (nothing written) when any of their keys is already taken
        in its organization (a concurrent submit committed it first)."""

    async def job_by_idempotency_key(self, organization_id: UUID, key: str) -> tuple[Job, str | None] | None:
        """The job created with ``key`` and its request's fingerprint (None: stored before
        fingerprints were kept)."""

    async def jobs_by_idempotency_keys(
        self, organization_id: UUID, keys: Sequence[str]
    ) -> dict[str, tuple[Job, str | None]]:
        """:meth:`job_by_idempotency_key` for many keys in one read: the keys that name a job (with
        its history), each with that job and its request's fingerprint."""

    async def get_job(
        self, job_id: UUID, *, for_update: bool = False, with_history: bool = False
    ) -> Job | None:
        """A job the unit's scope may see (row-level security hides other organizations' jobs)."""

    async def job_versions(self, job_ids: list[UUID]) -> dict[UUID, datetime]:
        """``updated_at`` of those of ``job_ids`` that exist (every write of a job moves it)."""

    async def node_versions(self, node_ids: list[UUID]) -> dict[UUID, NodeVersion]:
        """For each of ``node_ids``, the ids and ``updated_at`` of the jobs live on it (scheduled or
        running): what its assignment list was read from (empty for a node with none)."""

    async def list_jobs(
        self,
        status: JobStatus | None,
        before: tuple[datetime, UUID] | None,
        limit: int,
        project_id: UUID | None = None,
    ) -> list[Job]:
        """Newest first, strictly older than ``before`` (created_at, id) when given; only
        ``project_id``'s jobs when given."""

    async def save_job(self, job: Job) -> None:
        """Write the job's state, its new history entries and its recorded events (to the outbox)."""

    async def save_jobs(self, jobs: list[Job]) -> None:
        """:meth:`save_job` for many jobs in a few statements (a cycle's writes)."""

    # The leader lease (system scope). A token identifies one tenure; it grows at every take-over.
    async def take_lease(self, holder: str, ttl_s: float) -> int | None:
        """Take the lease when it is free or expired, or renew it when ``holder`` has it: its token,
        or None when another holder's lease is still valid."""

    async def hold_lease(self, holder: str, token: int, ttl_s: float) -> bool:
        """The fence: lock the lease row for the rest of this unit and extend it, if ``holder`` still
        holds it with ``token``. False: deposed; the unit must write nothing."""

    async def give_up_lease(self, holder: str, token: int) -> None:
        """Let a standby take over at once (a clean shutdown)."""

    # What the leader's in-memory state is rebuilt and updated from.
    async def job_watermark(self) -> int:
        """The jobs' change number as of now (changes in flight may still commit below it)."""

    async def scheduling_jobs(self) -> tuple[list[Job], int]:
        """Queued and on-node jobs, and where the next :meth:`job_changes` starts: a change made by a
        transaction from that point on may not have been visible to this read."""

    async def job_changes(self, unsettled: int, low: int, own: Sequence[int] = ()) -> tuple[list[Job], int]:
        """Jobs whose scheduling state changed in a transaction from ``unsettled`` on (the value the
        previous read returned: the changes it may have missed) and after change number ``low``, except
        those whose last change was one of the ``own`` transactions (the leader applied those itself);
        and the value the next read starts from."""

    async def transaction_id(self) -> int:
        """This unit's transaction, as :meth:`job_changes` tells changes apart (call it after a write)."""

    async def inventory(self) -> tuple[list[InventoryGpu], int]:
        """The whole GPU projection and its change watermark."""

    async def inventory_changes(self, after: int) -> tuple[list[InventoryGpu], int]:
        """Every GPU of the nodes that changed after ``after``, and the new watermark."""

    async def inventory_version(self) -> int:
        """The projection's change watermark (cheap: a cached capacity summary checks it)."""

    async def usage(self, half_life_s: float, horizon_s: float) -> list[UsageRow]:
        """Decayed usage of runs that ended within ``horizon_s``."""

    async def placeable_jobs(self, job_ids: list[UUID]) -> list[Job]:
        """Of ``job_ids``, the ones still queued and not held, locked for update."""

    async def running_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        """Of ``job_ids``, the running ones, locked for update (a report in flight is waited for)."""

    async def queued_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        """Of ``job_ids``, the queued ones, locked; rows locked by others are skipped."""

    async def schedulable_gpus(self, gpu_ids: list[UUID]) -> set[UUID]:
        """Of ``gpu_ids``, those fleet still offers (share-locked)."""

    async def hold_gpus(self, jobs: list[Job]) -> None:
        """Record the jobs' allocations; the database refuses a GPU that is already held."""

    async def queue_positions(self, jobs: list[Job]) -> None:
        """Fill ``queue_position`` of the waiting ones among ``jobs``."""

    async def release_gpus(self, *job_ids: UUID) -> None:
        """Free every GPU these jobs hold."""

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        """The job if it was placed on that node, locked for update."""

    async def jobs_on_node(self, job_ids: list[UUID], node_id: UUID) -> list[Job]:
        """:meth:`job_on_node` for many jobs in one read (those not placed on that node are left out)."""

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


class AdmissionCheck(Protocol):
    """Could any node of the fleet ever hold ``shape`` for ``organization``? None when it could,
    else why not (service_layer/capacity.py over the GPU projection)."""

    async def never_fits(self, shape: Shape, organization: UUID) -> str | None: ...
