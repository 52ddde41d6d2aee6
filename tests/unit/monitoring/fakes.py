"""An in-memory unit of work for monitoring's handler tests: transactional (writes apply only when the
unit exits cleanly) and tenant-scoped like row-level security; its clock is the store's ``now``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.monitoring.domain.samples import GpuSample
from services.monitoring.domain.utilization import GpuUtilization
from services.monitoring.service_layer.handlers import Dependencies


class CommitFailed(Exception):
    pass


class Store:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        self.samples: dict[tuple[UUID, datetime], GpuSample] = {}
        self.commits = 0
        self.fail_next_commit = False


class FakeUnitOfWork:
    def __init__(self, store: Store, org_id: UUID | None, system: bool) -> None:
        self.store, self.org_id, self.system = store, org_id, system
        self.added: dict[tuple[UUID, datetime], GpuSample] = {}
        self.deleted: set[tuple[UUID, datetime]] = set()

    def _visible(self, s: GpuSample) -> bool:
        return self.system or (s.organization_id is not None and s.organization_id == self.org_id)

    async def add_samples(self, samples: Sequence[GpuSample]) -> int:
        assert self.system, "ingestion writes every organization's samples: system scope only"
        new = 0
        for s in samples:
            key = (s.gpu_id, s.timestamp)
            if key not in self.store.samples and key not in self.added:
                self.added[key] = s
                new += 1
        return new

    async def utilization(self, organization_id: UUID, hours: int) -> list[GpuUtilization]:
        since = self.store.now - timedelta(hours=hours)
        by_gpu: dict[UUID, list[GpuSample]] = {}
        for s in self.store.samples.values():
            if self._visible(s) and s.organization_id == organization_id and s.timestamp >= since:
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
            del self.store.samples[key]
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
