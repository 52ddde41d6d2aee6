"""An in-memory unit of work for billing's handler tests: transactional (writes apply only when the unit
exits cleanly, so a crash before commit leaves nothing) and tenant-scoped like row-level security."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from services.billing.domain.costs import AttemptCost, RecordedCost, job_cost
from services.billing.domain.running import RunningAttempt
from services.billing.domain.summary import CostGroup, GroupBy, GroupedSums, Window
from services.billing.service_layer.handlers import Dependencies


class CommitFailed(Exception):
    """What a unit raises when the test says the process dies (or the database goes) at commit."""


class Store:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        self.claims: set[tuple[str, UUID]] = set()
        # (job_id, attempt) -> the attempt's cost and when it was committed: the UNIQUE key, per attempt.
        self.attempts: dict[tuple[UUID, int], tuple[AttemptCost, datetime]] = {}
        self.announced: list[AttemptCost] = []  # the CostRecorded outbox rows, in commit order
        self.commits = 0
        self.fail_next_commit = False
        # (job_id, attempt) -> the running attempt and when it ended (None: still running).
        self.running: dict[tuple[UUID, int], tuple[RunningAttempt, datetime | None]] = {}
        # What cost_summary answers (the SQL itself is tested against PostgreSQL) and what it was asked.
        self.sums = GroupedSums([], CostGroup("", Decimal(0), Decimal(0), Decimal(0), 0))
        self.summary_calls: list[tuple[UUID, GroupBy, Window, datetime, bool, UUID | None]] = []
        self.summary_projects: list[UUID | None] = []  # the project each summary was limited to

    @property
    def costs(self) -> dict[UUID, RecordedCost]:
        """Every job's cost over its attempts, as the repository reads it back."""
        by_job: dict[UUID, list[tuple[AttemptCost, datetime]]] = {}
        for (job_id, _), stored in self.attempts.items():
            by_job.setdefault(job_id, []).append(stored)
        return {
            job_id: RecordedCost(
                job_cost([a for a, _ in stored]),
                recorded_at=max(at for _, at in stored),
                first_recorded_at=min(at for _, at in stored),
            )
            for job_id, stored in by_job.items()
        }


class FakeUnitOfWork:
    def __init__(self, store: Store, org_id: UUID | None, system: bool) -> None:
        self.store, self.org_id, self.system = store, org_id, system
        # Written by this unit, applied to the store at commit.
        self.new_claims: set[tuple[str, UUID]] = set()
        self.new_attempts: dict[tuple[UUID, int], AttemptCost] = {}
        self.new_events: list[AttemptCost] = []
        self.new_running: dict[tuple[UUID, int], tuple[RunningAttempt, datetime | None]] = {}
        self.pruned: set[tuple[UUID, int]] = set()

    def _visible(self, org: UUID) -> bool:
        return self.system or org == self.org_id

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        key = (consumer, event_id)
        if key in self.store.claims or key in self.new_claims:
            return False
        self.new_claims.add(key)
        return True

    async def add_attempt_cost(self, cost: AttemptCost) -> bool:
        key = (cost.job_id, cost.attempt)
        if key in self.store.attempts or key in self.new_attempts:
            return False
        self.new_attempts[key] = cost
        return True

    async def announce_cost(self, cost: AttemptCost) -> None:
        self.new_events.append(cost)

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return {e for e in dict.fromkeys(event_ids) if await self.claim(consumer, e)}

    async def add_attempt_costs(self, costs: Sequence[AttemptCost]) -> list[AttemptCost]:
        assert len({c.job_id for c in costs}) == len(costs), "at most one attempt per job"
        return [c for c in costs if await self.add_attempt_cost(c)]

    async def announce_costs(self, costs: Sequence[AttemptCost]) -> None:
        self.new_events.extend(costs)

    async def track_running_many(self, attempts: Sequence[RunningAttempt]) -> None:
        numbers: dict[UUID, int] = {}
        for a in attempts:
            assert numbers.setdefault(a.job_id, a.attempt) == a.attempt, "one attempt number per job"
            await self.track_running(a)

    async def end_running_many(self, ends: Sequence[tuple[UUID, int, datetime]]) -> None:
        assert len({job for job, _, _ in ends}) == len(ends), "at most one end per job"
        for job, attempt, at in ends:
            await self.end_running(job, attempt, at)

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        found = self.store.costs.get(job_id)
        return found if found is not None and self._visible(found.cost.organization_id) else None

    async def costs(
        self, after: tuple[datetime, UUID] | None, limit: int, *, project: UUID | None = None
    ) -> list[RecordedCost]:
        visible = [c for c in self.store.costs.values() if self._visible(c.cost.organization_id)]
        if project is not None:
            visible = [c for c in visible if c.cost.project_id == project]
        ordered = sorted(visible, key=lambda c: (c.first_recorded_at, c.cost.job_id), reverse=True)
        if after is not None:
            ordered = [c for c in ordered if (c.first_recorded_at, c.cost.job_id) < after]
        return ordered[:limit]

    def _running(self) -> dict[tuple[UUID, int], tuple[RunningAttempt, datetime | None]]:
        return {**self.store.running, **self.new_running}

    async def track_running(self, attempt: RunningAttempt) -> int:
        for (job_id, number), (running, ended) in self._running().items():
            if job_id == attempt.job_id and number < attempt.attempt and ended is None:
                self.new_running[job_id, number] = (running, attempt.scheduled_at)
        billed = any(j == attempt.job_id and n >= attempt.attempt for j, n in self.store.attempts)
        billed = billed or any(j == attempt.job_id and n >= attempt.attempt for j, n in self.new_attempts)
        key = (attempt.job_id, attempt.attempt)
        if billed or key in self._running():
            return 0
        self.new_running[key] = (attempt, None)
        return len(attempt.allocation)

    async def end_running(self, job_id: UUID, attempt: int, at: datetime) -> None:
        for (j, n), (running, ended) in self._running().items():
            if j == job_id and n <= attempt and ended is None:
                self.new_running[j, n] = (running, at)

    async def cost_summary(
        self,
        organization_id: UUID,
        by: GroupBy,
        window: Window,
        as_of: datetime,
        include_running: bool,
        *,
        project: UUID | None = None,
    ) -> GroupedSums:
        self.store.summary_calls.append((organization_id, by, window, as_of, include_running, self.org_id))
        self.store.summary_projects.append(project)
        return self.store.sums

    async def prune_ended_running(self, before: datetime) -> int:
        gone = [k for k, (_, ended) in self._running().items() if ended is not None and ended < before]
        self.pruned.update(gone)
        return len(gone)

    def commit(self) -> None:
        if self.store.fail_next_commit:
            self.store.fail_next_commit = False
            raise CommitFailed("the process died at commit")
        self.store.now += timedelta(seconds=1)
        self.store.claims |= self.new_claims
        for key, cost in self.new_attempts.items():
            self.store.attempts[key] = (cost, self.store.now)
        self.store.announced.extend(self.new_events)
        self.store.running.update(self.new_running)
        for key in self.pruned:
            self.store.running.pop(key, None)
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
