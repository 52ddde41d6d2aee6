"""In-memory fakes of the scheduler's ports (unit of work, catalog). A unit of work works on a copy of
the store and swaps it in on success, so a failing handler leaves nothing behind, like a rollback."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.scheduler.domain.inventory import InventoryGpu
from services.scheduler.domain.model import Job, JobChanged, JobStatus, StatusChange
from services.scheduler.domain.placement import FreeGpu
from services.scheduler.service_layer.handlers import Dependencies
from services.scheduler.service_layer.wakeup import Wakeup


@dataclass
class Store:
    jobs: dict[UUID, Job] = field(default_factory=dict)
    history: dict[UUID, list[StatusChange]] = field(default_factory=dict)
    outbox: list[JobChanged] = field(default_factory=list)
    inventory: dict[UUID, InventoryGpu] = field(default_factory=dict)
    allocations: dict[UUID, UUID] = field(default_factory=dict)  # gpu -> job
    claims: set[tuple[str, UUID]] = field(default_factory=set)
    fingerprints: dict[UUID, str | None] = field(default_factory=dict)  # job -> its request's


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _copy(job: Job) -> Job:
    return copy.deepcopy(job)


def _row(job: Job) -> Job:
    """What a table row holds: the state, not the unit's pending history and events."""
    stored = _copy(job)
    stored.history, stored.new_history, stored.events = [], [], []
    return stored


class FakeUnitOfWork:
    def __init__(self, store: Store, clock: Clock, org_id: UUID | None) -> None:
        self.store, self.clock, self.org_id = store, clock, org_id

    def _visible(self, job: Job) -> bool:
        return self.org_id is None or job.organization_id == self.org_id

    async def now(self) -> datetime:
        return self.clock.tick(0.001)

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        if job.idempotency_key and await self.job_by_idempotency_key(
            job.organization_id, job.idempotency_key
        ):
            return False
        self.store.jobs[job.id] = _row(job)
        self.store.history[job.id] = []
        self.store.fingerprints[job.id] = fingerprint
        self._write(job)
        return True

    async def job_by_idempotency_key(self, organization_id: UUID, key: str) -> tuple[Job, str | None] | None:
        for job in self.store.jobs.values():
            if job.organization_id == organization_id and job.idempotency_key == key and self._visible(job):
                return self._load(job, True), self.store.fingerprints.get(job.id)
        return None

    def _load(self, job: Job, with_history: bool) -> Job:
        out = _copy(job)
        out.history = list(self.store.history[job.id]) if with_history else []
        return out

    async def get_job(
        self, job_id: UUID, *, for_update: bool = False, with_history: bool = False
    ) -> Job | None:
        job = self.store.jobs.get(job_id)
        return self._load(job, with_history) if job is not None and self._visible(job) else None

    async def list_jobs(self, status, before, limit):
        jobs = sorted(
            (j for j in self.store.jobs.values() if self._visible(j)),
            key=lambda j: (j.created_at, j.id),
            reverse=True,
        )
        if status is not None:
            jobs = [j for j in jobs if j.status is status]
        if before is not None:
            jobs = [j for j in jobs if (j.created_at, j.id) < before]
        return [self._load(j, False) for j in jobs[:limit]]

    async def save_job(self, job: Job) -> None:
        assert job.id in self.store.jobs and self._visible(self.store.jobs[job.id])
        self.store.jobs[job.id] = _row(job)
        self._write(job)

    def _write(self, job: Job) -> None:
        self.store.history[job.id].extend(job.new_history)
        self.store.outbox.extend(job.events)
        job.new_history.clear()
        job.events.clear()

    async def lead_scheduling(self) -> bool:
        return True

    async def queued_jobs(self, limit: int) -> list[Job]:
        queued = [j for j in self.store.jobs.values() if j.status is JobStatus.QUEUED]
        queued.sort(key=lambda j: (-j.priority, j.created_at))
        return [self._load(j, False) for j in queued[:limit]]

    async def free_gpus(self) -> list[FreeGpu]:
        return [
            FreeGpu(
                g.gpu_id,
                g.node_id,
                g.device_index,
                g.gpu_type,
                g.memory_total_mb,
                g.cost_per_hour,
                g.organization_id,
            )
            for g in self.store.inventory.values()
            if g.status == "available" and g.gpu_id not in self.store.allocations
        ]

    async def hold_gpus(self, job: Job) -> None:
        for a in job.allocation:
            if a.gpu_id in self.store.allocations:
                raise RuntimeError(f"GPU {a.gpu_id} is already held")  # the primary key, in the fake
            self.store.allocations[a.gpu_id] = job.id

    async def release_gpus(self, job_id: UUID) -> None:
        for gpu_id in [g for g, j in self.store.allocations.items() if j == job_id]:
            del self.store.allocations[gpu_id]

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        job = self.store.jobs.get(job_id)
        return self._load(job, False) if job is not None and job.node_id == node_id else None

    async def live_jobs_on_node(self, node_id: UUID) -> list[Job]:
        return [
            self._load(j, False)
            for j in self.store.jobs.values()
            if j.node_id == node_id and j.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)
        ]

    async def upsert_gpu(self, gpu: InventoryGpu) -> bool:
        current = self.store.inventory.get(gpu.gpu_id)
        if current is not None and current.revision >= gpu.revision:
            return False
        self.store.inventory[gpu.gpu_id] = gpu
        return True

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        if (consumer, event_id) in self.store.claims:
            return False
        self.store.claims.add((consumer, event_id))
        return True


class FakeUnitOfWorkFactory:
    def __init__(self) -> None:
        self.store = Store()
        self.clock = Clock()
        self.units = 0

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[FakeUnitOfWork]:
        assert org_id is not None or system, "a unit needs a tenant or the system scope"
        self.units += 1
        working = copy.deepcopy(self.store)
        yield FakeUnitOfWork(working, self.clock, None if system else org_id)
        self.store = working  # committed


class FakeCatalog:
    def __init__(self, names: set[str]) -> None:
        self._names = frozenset(names)
        self.calls: list[str | None] = []

    async def names(self, authorization: str | None) -> frozenset[str]:
        self.calls.append(authorization)
        return self._names


def fake_dependencies(
    types: set[str] | None = None,
) -> tuple[Dependencies, FakeUnitOfWorkFactory, FakeCatalog]:
    uow = FakeUnitOfWorkFactory()
    catalog = FakeCatalog(types if types is not None else {"h100-80gb", "a100-40gb"})
    return Dependencies(uow=uow, catalog=catalog, wakeup=Wakeup()), uow, catalog
