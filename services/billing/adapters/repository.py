"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects.

Tenant units run with ``org_id`` (row-level security hides other organizations' costs); the job-event
consumer runs with ``system=True``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, exists, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import consumers, outbox
from shared.contracts import topics
from shared.db import Database

from ..domain.costs import AttemptCost, CostLine, Outcome, RecordedCost, job_cost
from ..domain.running import RunningAttempt
from ..domain.summary import GroupBy, GroupedSums, Window
from ..service_layer.unit_of_work import BillingUnitOfWork, UnitOfWorkFactory
from . import summary
from .events import cost_recorded
from .orm import CostRow

COSTS: Table = CostRow.__table__  # type: ignore[attr-defined]
LINE_ORDER = (COSTS.c.attempt, COSTS.c.gpu_id)

# The consumer's batch, set-based: one statement for every attempt of a batch (text over unnest arrays:
# a fixed statement that asyncpg prepares once, whatever the batch's size).
#
# An attempt billed before (whichever GPUs that event named) gets no line; UNIQUE (job_id, attempt,
# gpu_id) makes a unit racing this one for the same attempt insert nothing (the NOT EXISTS sees the
# statement's snapshot, so an attempt's own lines in this statement do not hide each other).
_ADD_LINES = text(
    "INSERT INTO cost_tracking (id, organization_id, user_id, project_id, job_id, attempt, outcome, "
    "gpu_id, gpu_type, start_time, end_time, seconds, cost_per_hour, total_cost, credit, currency) "
    "SELECT l.* FROM unnest(CAST(:ids AS uuid[]), CAST(:orgs AS uuid[]), CAST(:users AS uuid[]), "
    "CAST(:projects AS uuid[]), CAST(:jobs AS uuid[]), CAST(:attempts AS integer[]), "
    "CAST(:outcomes AS text[]), CAST(:gpus AS uuid[]), CAST(:types AS text[]), "
    "CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), CAST(:seconds AS numeric[]), "
    "CAST(:prices AS numeric[]), CAST(:costs AS numeric[]), CAST(:credits AS numeric[]), "
    "CAST(:currencies AS text[])) AS l(id, organization_id, user_id, project_id, job_id, attempt, outcome, "
    "gpu_id, gpu_type, start_time, end_time, seconds, cost_per_hour, total_cost, credit, currency) "
    "WHERE NOT EXISTS (SELECT 1 FROM cost_tracking c WHERE c.job_id = l.job_id AND c.attempt = l.attempt) "
    "ON CONFLICT (job_id, attempt, gpu_id) DO NOTHING RETURNING job_id, attempt"
)


class AttemptBilledTwice(RuntimeError):
    """Two units billed the same attempt at once with different GPUs: rolled back, the redelivery then
    finds the attempt billed (a scheduler that reported one attempt with two allocations)."""


def _recorded(rows: Sequence[Any]) -> RecordedCost:
    """One job's rows (ordered by attempt, then GPU) as its cost over attempts."""
    by_attempt: dict[int, list[Any]] = {}
    for r in rows:
        by_attempt.setdefault(r.attempt, []).append(r)
    attempts = [
        AttemptCost(
            job_id=group[0].job_id,
            organization_id=group[0].organization_id,
            user_id=group[0].user_id,
            attempt=number,
            outcome=cast(Outcome | None, group[0].outcome),
            project_id=group[0].project_id,
            lines=tuple(
                CostLine(
                    r.gpu_id,
                    r.gpu_type,
                    r.cost_per_hour,
                    r.start_time,
                    r.end_time,
                    r.seconds,
                    r.total_cost,
                    attempt=r.attempt,
                    credit=r.credit,
                )
                for r in group
            ),
            currency=group[0].currency,
        )
        for number, group in by_attempt.items()
    ]
    created = [r.created_at for r in rows]
    return RecordedCost(job_cost(attempts), recorded_at=max(created), first_recorded_at=min(created))


class SqlUnitOfWork(BillingUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        return await consumers.claim(self.session, consumer, event_id)

    async def add_attempt_cost(self, cost: AttemptCost) -> bool:
        billed = select(exists().where(COSTS.c.job_id == cost.job_id, COSTS.c.attempt == cost.attempt))
        if (await self.session.execute(billed)).scalar_one():
            return False  # this attempt was billed before, whichever GPUs that event named
        rows = [
            {
                "id": uuid.uuid4(),
                "organization_id": cost.organization_id,
                "user_id": cost.user_id,
                "project_id": cost.project_id,
                "job_id": cost.job_id,
                "attempt": cost.attempt,
                "outcome": cost.outcome,
                "gpu_id": line.gpu_id,
                "gpu_type": line.gpu_type,
                "start_time": line.start_time,
                "end_time": line.end_time,
                "seconds": line.seconds,
                "cost_per_hour": line.cost_per_hour,
                "total_cost": line.cost,
                "credit": line.credit,
                "currency": cost.currency,
            }
            for line in cost.lines
        ]
        # UNIQUE (job_id, attempt, gpu_id): a unit racing this one for the same attempt inserts nothing.
        stmt = (
            insert(COSTS)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["job_id", "attempt", "gpu_id"])
            .returning(COSTS.c.id)
        )
        inserted = len((await self.session.execute(stmt)).all())
        if 0 < inserted < len(rows):
            raise AttemptBilledTwice(f"job {cost.job_id} attempt {cost.attempt}: billed concurrently")
        return inserted == len(rows)

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return await consumers.claim_many(self.session, consumer, list(event_ids))

    async def add_attempt_costs(self, costs: Sequence[AttemptCost]) -> list[AttemptCost]:
        lines = [(cost, line) for cost in costs for line in cost.lines]
        if not lines:
            return []
        params = {
            "ids": [uuid.uuid4() for _ in lines],
            "orgs": [c.organization_id for c, _ in lines],
            "users": [c.user_id for c, _ in lines],
            "projects": [c.project_id for c, _ in lines],
            "jobs": [c.job_id for c, _ in lines],
            "attempts": [c.attempt for c, _ in lines],
            "outcomes": [c.outcome for c, _ in lines],
            "gpus": [ln.gpu_id for _, ln in lines],
            "types": [ln.gpu_type for _, ln in lines],
            "starts": [ln.start_time for _, ln in lines],
            "ends": [ln.end_time for _, ln in lines],
            "seconds": [ln.seconds for _, ln in lines],
            "prices": [ln.cost_per_hour for _, ln in lines],
            "costs": [ln.cost for _, ln in lines],
            "credits": [ln.credit for _, ln in lines],
            "currencies": [c.currency for c, _ in lines],
        }
        inserted: dict[tuple[UUID, int], int] = {}
        for job_id, attempt in await self.session.execute(_ADD_LINES, params):
            inserted[(job_id, attempt)] = inserted.get((job_id, attempt), 0) + 1
        billed = []
        for cost in costs:
            n = inserted.get((cost.job_id, cost.attempt), 0)
            if 0 < n < len(cost.lines):
                raise AttemptBilledTwice(f"job {cost.job_id} attempt {cost.attempt}: billed concurrently")
            if n and n == len(cost.lines):
                billed.append(cost)
        return billed

    async def announce_costs(self, costs: Sequence[AttemptCost]) -> None:
        await outbox.record_many(
            self.session, topics.COSTS, [(cost_recorded(c), str(c.job_id)) for c in costs]
        )

    async def track_running_many(self, attempts: Sequence[RunningAttempt]) -> None:
        await summary.track_running_many(self.session, attempts)

    async def end_running_many(self, ends: Sequence[tuple[UUID, int, datetime]]) -> None:
        await summary.end_running_many(self.session, ends)

    async def announce_cost(self, cost: AttemptCost) -> None:
        await outbox.record(self.session, topics.COSTS, cost_recorded(cost), key=str(cost.job_id))

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        rows = (
            await self.session.execute(select(COSTS).where(COSTS.c.job_id == job_id).order_by(*LINE_ORDER))
        ).all()
        return _recorded(rows) if rows else None

    async def costs(
        self, after: tuple[datetime, UUID] | None, limit: int, *, project: UUID | None = None
    ) -> list[RecordedCost]:
        first = func.min(COSTS.c.created_at)
        jobs = select(COSTS.c.job_id, first.label("first_recorded_at")).group_by(COSTS.c.job_id)
        if project is not None:
            jobs = jobs.where(COSTS.c.project_id == project)  # a job's lines all carry its project
        if after is not None:
            jobs = jobs.having(tuple_(first, COSTS.c.job_id) < tuple_(*after))
        jobs = jobs.order_by(first.desc(), COSTS.c.job_id.desc()).limit(limit)
        ids = [r.job_id for r in (await self.session.execute(jobs)).all()]
        if not ids:
            return []
        rows = (
            await self.session.execute(select(COSTS).where(COSTS.c.job_id.in_(ids)).order_by(*LINE_ORDER))
        ).all()
        by_job: dict[UUID, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        return [_recorded(by_job[i]) for i in ids]

    async def track_running(self, attempt: RunningAttempt) -> int:
        return await summary.track_running(self.session, attempt)

    async def end_running(self, job_id: UUID, attempt: int, at: datetime) -> None:
        await summary.end_running(self.session, job_id, attempt, at)

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
        # RLS already limits a tenant unit to its organization; the explicit filter lets the planner
        # use the (organization_id, end_time) index.
        return await summary.grouped_sums(
            self.session, organization_id, by, window, as_of, include_running, project=project
        )

    async def prune_ended_running(self, before: datetime) -> int:
        return await summary.delete_ended_before(self.session, before)


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    return db.unit_of_work(SqlUnitOfWork)  # type: ignore[return-value]
