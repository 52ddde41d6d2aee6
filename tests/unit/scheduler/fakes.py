"""In-memory fakes of the scheduler's ports (unit of work, catalog). A unit of work works on a copy of
the store and swaps it in on success, so a failing handler leaves nothing behind, like a rollback."""

from __future__ import annotations

import copy
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.scheduler.domain.inventory import InventoryGpu
from services.scheduler.domain.model import Job, JobChanged, JobStatus, StatusChange
from services.scheduler.service_layer.handlers import Dependencies
from services.scheduler.service_layer.scheduling import Scheduler
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
    lease: tuple[str, int, datetime] = ("", 0, datetime.min.replace(tzinfo=UTC))  # holder, token, expires
    job_seq: dict[UUID, int] = field(default_factory=dict)  # job -> its change number
    inventory_seq: dict[UUID, int] = field(default_factory=dict)
    seq: int = 0
    audits: list[Any] = field(default_factory=list)  # audit CloudEvents written with the change


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

    async def record_audit(self, *envelopes: Any) -> None:
        self.store.audits.extend(envelopes)

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        if job.idempotency_key and await self.job_by_idempotency_key(
            job.organization_id, job.idempotency_key
        ):
            return False
        self.store.jobs[job.id] = _row(job)
        self.store.history[job.id] = []
        self.store.fingerprints[job.id] = fingerprint
        self._bump(job.id)
        self._write(job)
        return True

    async def add_jobs(self, jobs: list[tuple[Job, str | None]], *, audit: Any = ()) -> None:
        for job, fingerprint in jobs:
            assert job.idempotency_key is None
            await self.add_job(job, fingerprint=fingerprint)
        self.store.audits.extend(audit)

    async def add_keyed_jobs(self, jobs: list[tuple[Job, str | None]], *, audit: Any = ()) -> bool:
        keys = [job.idempotency_key for job, _ in jobs]
        assert all(keys)
        if await self.jobs_by_idempotency_keys(jobs[0][0].organization_id, keys):  # type: ignore[arg-type]
            return False
        for job, fingerprint in jobs:
            await self.add_job(job, fingerprint=fingerprint)
        self.store.audits.extend(audit)
        return True

    async def jobs_by_idempotency_keys(
        self, organization_id: UUID, keys
    ) -> dict[str, tuple[Job, str | None]]:
        found = {}
        for key in keys:
            hit = await self.job_by_idempotency_key(organization_id, key)
            if hit is not None:
                found[key] = hit
        return found

    def _bump(self, job_id: UUID) -> None:
        self.store.seq += 1
        self.store.job_seq[job_id] = self.store.seq

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

    async def list_jobs(self, status, before, limit, project_id=None):
        jobs = sorted(
            (j for j in self.store.jobs.values() if self._visible(j)),
            key=lambda j: (j.created_at, j.id),
            reverse=True,
        )
        if project_id is not None:
            jobs = [j for j in jobs if j.project_id == project_id]
        if status is not None:
            jobs = [j for j in jobs if j.status is status]
        if before is not None:
            jobs = [j for j in jobs if (j.created_at, j.id) < before]
        return [self._load(j, False) for j in jobs[:limit]]

    async def save_job(self, job: Job) -> None:
        assert job.id in self.store.jobs and self._visible(self.store.jobs[job.id])
        old = self.store.jobs[job.id]
        if (old.status, old.held, old.priority, old.attempt, old.node_ids) != (
            job.status,
            job.held,
            job.priority,
            job.attempt,
            job.node_ids,
        ):
            self._bump(job.id)
        self.store.jobs[job.id] = _row(job)
        self._write(job)

    async def save_jobs(self, jobs: list[Job]) -> None:
        for job in jobs:
            await self.save_job(job)

    def _write(self, job: Job) -> None:
        self.store.history[job.id].extend(job.new_history)
        self.store.outbox.extend(job.events)
        job.new_history.clear()
        job.events.clear()

    async def take_lease(self, holder: str, ttl_s: float) -> int | None:
        current, token, expires = self.store.lease
        now = self.clock.now
        if current != holder and expires > now:
            return None
        if current != holder:
            token += 1
        self.store.lease = (holder, token, now + timedelta(seconds=ttl_s))
        return token

    async def hold_lease(self, holder: str, token: int, ttl_s: float) -> bool:
        current, have, _ = self.store.lease
        if (current, have) != (holder, token):
            return False
        self.store.lease = (holder, token, self.clock.now + timedelta(seconds=ttl_s))
        return True

    async def give_up_lease(self, holder: str, token: int) -> None:
        if self.store.lease[:2] == (holder, token):
            self.store.lease = (holder, token, self.clock.now)

    async def job_watermark(self) -> int:
        return self.store.seq

    async def scheduling_jobs(self) -> tuple[list[Job], int]:
        live = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RUNNING)
        # A fake's change is visible once made: the next read starts after the newest one.
        return [
            self._load(j, False) for j in self.store.jobs.values() if j.status in live
        ], self.store.seq + 1

    async def job_changes(self, unsettled: int, low: int, own=()) -> tuple[list[Job], int]:
        changed = sorted(
            (seq, jid) for jid, seq in self.store.job_seq.items() if seq > low and seq >= unsettled
        )
        return [self._load(self.store.jobs[jid], False) for _, jid in changed], self.store.seq + 1

    async def transaction_id(self) -> int:
        return 0  # the fake tells no transactions apart: nothing is left out of a read

    async def inventory(self) -> tuple[list[InventoryGpu], int]:
        return list(self.store.inventory.values()), max(self.store.inventory_seq.values(), default=0)

    async def inventory_changes(self, after: int) -> tuple[list[InventoryGpu], int]:
        nodes = {
            self.store.inventory[g].node_id for g, seq in self.store.inventory_seq.items() if seq > after
        }
        if not nodes:
            return [], after
        return [g for g in self.store.inventory.values() if g.node_id in nodes], max(
            self.store.inventory_seq.values()
        )

    async def inventory_version(self) -> int:
        return max(self.store.inventory_seq.values(), default=0)

    async def usage(self, half_life_s: float, horizon_s: float) -> list:
        return []

    async def placeable_jobs(self, job_ids: list[UUID]) -> list[Job]:
        return [
            self._load(self.store.jobs[j], False)
            for j in job_ids
            if j in self.store.jobs
            and self.store.jobs[j].status is JobStatus.QUEUED
            and not self.store.jobs[j].held
        ]

    async def running_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        return [
            self._load(self.store.jobs[j], False)
            for j in sorted(job_ids)
            if j in self.store.jobs and self.store.jobs[j].status is JobStatus.RUNNING
        ]

    async def queued_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        return [
            self._load(self.store.jobs[j], False)
            for j in job_ids
            if j in self.store.jobs and self.store.jobs[j].status is JobStatus.QUEUED
        ]

    async def schedulable_gpus(self, gpu_ids: list[UUID]) -> set[UUID]:
        return {g for g in gpu_ids if g in self.store.inventory and self.store.inventory[g].schedulable}

    async def hold_gpus(self, jobs: list[Job]) -> None:
        for job in jobs:
            for a in job.allocation:
                if a.gpu_id in self.store.allocations:
                    raise RuntimeError(f"GPU {a.gpu_id} is already held")  # the primary key, in the fake
                self.store.allocations[a.gpu_id] = job.id

    async def queue_positions(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.status is not JobStatus.QUEUED or job.held:
                continue
            key = (-job.priority, job.created_at, job.id)
            job.queue_position = 1 + sum(
                1
                for o in self.store.jobs.values()
                if o.organization_id == job.organization_id
                and o.status is JobStatus.QUEUED
                and not o.held
                and (-o.priority, o.created_at, o.id) < key
            )

    async def release_gpus(self, *job_ids: UUID) -> None:
        for gpu_id in [g for g, j in self.store.allocations.items() if j in job_ids]:
            del self.store.allocations[gpu_id]

    async def jobs_on_node(self, job_ids: list[UUID], node_id: UUID) -> list[Job]:
        found = [await self.job_on_node(j, node_id) for j in sorted(set(job_ids))]
        return [j for j in found if j is not None]

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        job = self.store.jobs.get(job_id)
        return self._load(job, False) if job is not None and node_id in job.node_ids else None

    async def node_versions(self, node_ids: list[UUID]) -> dict[UUID, frozenset]:
        found: dict[UUID, set] = {node: set() for node in node_ids}
        for j in self.store.jobs.values():
            if j.status in (JobStatus.SCHEDULED, JobStatus.RUNNING):
                for node in set(j.node_ids) & set(node_ids):
                    found[node].add((j.id, j.updated_at))
        return {node: frozenset(jobs) for node, jobs in found.items()}

    async def live_jobs_on_node(self, node_id: UUID) -> list[Job]:
        return [
            self._load(j, False)
            for j in self.store.jobs.values()
            if node_id in j.node_ids and j.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)
        ]

    async def upsert_gpu(self, gpu: InventoryGpu) -> bool:
        current = self.store.inventory.get(gpu.gpu_id)
        if current is not None and current.revision >= gpu.revision:
            return False
        self.store.inventory[gpu.gpu_id] = gpu
        self.store.seq += 1
        self.store.inventory_seq[gpu.gpu_id] = self.store.seq
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


_SCHEDULERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def schedule_round(deps: Dependencies) -> list[Job]:
    """One step of this test's scheduler (the same one across calls, so its snapshot is kept and
    updated incrementally, as in the service); the jobs it placed."""
    scheduler = _SCHEDULERS.get(deps.uow)
    if scheduler is None:
        scheduler = _SCHEDULERS[deps.uow] = Scheduler(deps, "test-leader")
    report = await scheduler.step()
    return report.placed if report is not None else []
