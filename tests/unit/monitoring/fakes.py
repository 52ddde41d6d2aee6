"""An in-memory unit of work for monitoring's handler tests: transactional (writes apply only when the
unit exits cleanly) and tenant-scoped like row-level security; its clock is the store's ``now``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.monitoring.domain.allocations import Hold, HoldKey, Placement, Span, holder
from services.monitoring.domain.samples import GpuSample
from services.monitoring.domain.utilization import GpuUtilization
from services.monitoring.service_layer.allocation_ports import AttemptKey
from services.monitoring.service_layer.handlers import Dependencies
from services.monitoring.service_layer.unit_of_work import StoredSample


class FakeAllocations:
    """The allocation history in memory, shared by the samples' and the output's fakes (as the table
    is by both units of work). Writes apply at once; locks are recorded, not taken (one event loop)."""

    def __init__(self, samples: dict[tuple[UUID, datetime], GpuSample] | None = None) -> None:
        self.held: dict[HoldKey, Hold] = {}
        self.samples = samples if samples is not None else {}
        self.locked_gpus: list[list[UUID]] = []

    async def lock_gpus(self, gpu_ids: Iterable[UUID]) -> None:
        self.locked_gpus.append(sorted(set(gpu_ids), key=lambda g: g.bytes))

    async def lock_attempts(self, keys: Iterable[AttemptKey]) -> None:
        pass

    async def holds(self, keys: Sequence[HoldKey]) -> dict[HoldKey, Hold]:
        return {k: self.held[k] for k in keys if k in self.held}

    async def save_holds(self, holds: Sequence[Hold]) -> None:
        self.held.update({h.key: h for h in holds})

    async def reattribute(self, spans: Sequence[Span]) -> int:
        n = 0
        for key, s in list(self.samples.items()):
            if any(
                sp.gpu_id == s.gpu_id and sp.start <= s.timestamp and (sp.end is None or s.timestamp < sp.end)
                for sp in spans
            ):
                self.samples[key] = self.attributed(s)
                n += 1
        return n

    def attributed(self, s: GpuSample) -> GpuSample:
        """The sample as stored: the covering hold's job and organization (the fields the fake keeps
        them in are the claimed ones, replaced)."""
        h = holder(self.held.values(), s.gpu_id, s.node_id, s.timestamp)
        return dataclasses.replace(
            s,
            claimed_job_id=h.job_id if h else None,
            claimed_organization_id=h.organization_id if h else None,
        )

    async def placements(self, keys: Sequence[AttemptKey]) -> dict[AttemptKey, Placement]:
        out: dict[AttemptKey, Placement] = {}
        for key in keys:
            placed = [h for h in self.held.values() if h.key[:2] == key and h.node_id is not None]
            if placed:
                out[key] = Placement(
                    placed[0].organization_id,
                    frozenset(h.node_id for h in placed if h.node_id),
                    next((h.project_id for h in placed if h.project_id), None),
                )
        return out

    def in_project(self, job_id: UUID | None, project_id: UUID) -> bool:
        """The job holds (or held) a GPU in ``project_id`` (the SQL's IN_PROJECT)."""
        return any(h.job_id == job_id and h.project_id == project_id for h in self.held.values())

    async def delete_ended_before(self, hours: int) -> int:
        return 0


class CommitFailed(Exception):
    pass


class Store:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        self.samples: dict[tuple[UUID, datetime], GpuSample] = {}
        self.allocations = FakeAllocations(self.samples)
        self.commits = 0
        self.fail_next_commit = False


class FakeUnitOfWork:
    def __init__(self, store: Store, org_id: UUID | None, system: bool) -> None:
        self.store, self.org_id, self.system = store, org_id, system
        self.allocations = store.allocations
        self.added: dict[tuple[UUID, datetime], GpuSample] = {}
        self.deleted: set[tuple[UUID, datetime]] = set()

    def _visible(self, s: GpuSample) -> bool:
        return self.system or (
            s.claimed_organization_id is not None and s.claimed_organization_id == self.org_id
        )

    async def add_samples(self, samples: Sequence[GpuSample]) -> list[StoredSample]:
        """Stored samples keep their attributed job and organization in the ``claimed_*`` fields."""
        assert self.system, "ingestion writes every organization's samples: system scope only"
        new = []
        for s in samples:
            key = (s.gpu_id, s.timestamp)
            if key not in self.store.samples and key not in self.added:
                self.added[key] = stored = self.allocations.attributed(s)
                new.append(StoredSample(s.gpu_id, s.timestamp, stored.claimed_organization_id))
        return new

    async def utilization(
        self, organization_id: UUID, hours: int, project_id: UUID | None = None
    ) -> list[GpuUtilization]:
        since = self.store.now - timedelta(hours=hours)
        by_gpu: dict[UUID, list[GpuSample]] = {}
        for s in self.store.samples.values():
            if not (
                self._visible(s) and s.claimed_organization_id == organization_id and s.timestamp >= since
            ):
                continue
            if project_id is not None and not self.allocations.in_project(s.claimed_job_id, project_id):
                continue
            by_gpu.setdefault(s.gpu_id, []).append(s)
        out = [
            GpuUtilization(
                gpu_id=gpu_id,
                gpu_name=max(s.gpu_name for s in ss),
                gpu_type=max(s.gpu_type for s in ss),
                avg_utilization=sum(round(s.gpu_utilization, 2) for s in ss) / len(ss),
                max_utilization=max(round(s.gpu_utilization, 2) for s in ss),
                avg_memory_used_mb=sum(s.memory_used_mb for s in ss) / len(ss),
                samples=len(ss),
                first_sample_at=min(s.timestamp for s in ss),
                last_sample_at=max(s.timestamp for s in ss),
            )
            for gpu_id, ss in by_gpu.items()
        ]
        return sorted(out, key=lambda g: (g.gpu_name, str(g.gpu_id)))

    async def delete_samples_older_than(self, hours: int) -> int:
        assert self.system
        cutoff = self.store.now - timedelta(hours=hours)
        self.deleted = {k for k, s in self.store.samples.items() if s.timestamp < cutoff}
        return len(self.deleted)

    def commit(self) -> None:
        if self.store.fail_next_commit:
            self.store.fail_next_commit = False
            raise CommitFailed("the database went away at commit")
        for key in self.deleted:
            self.store.samples.pop(key, None)
        self.store.samples.update(self.added)
        self.store.commits += 1


def fake_dependencies() -> tuple[Dependencies, Store]:
    store = Store()

    @asynccontextmanager
    async def uow(*, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[FakeUnitOfWork]:
        if org_id is None and not system:
            raise ValueError("a unit of work needs a tenant (org_id=...) or system=True")
        unit = FakeUnitOfWork(store, org_id, system)
        yield unit
        unit.commit()  # not reached when the body raised: the unit rolls back

    return Dependencies(uow=uow), store
