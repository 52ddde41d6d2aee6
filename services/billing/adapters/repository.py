"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects.

Tenant units run with ``org_id`` (row-level security hides other organizations' costs); the job-event
consumer runs with ``system=True``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import consumers, outbox
from shared.contracts import topics
from shared.db import Database

from ..domain.costs import CostLine, JobCost, RecordedCost
from ..service_layer.unit_of_work import BillingUnitOfWork, UnitOfWorkFactory
from .events import cost_recorded
from .orm import CostRow

COSTS: Table = CostRow.__table__  # type: ignore[attr-defined]


def _recorded(rows: Sequence[Any]) -> RecordedCost:
    """One job's rows (ordered by GPU) as its cost; recorded when its last line was."""
    first = rows[0]
    lines = tuple(
        CostLine(r.gpu_id, r.gpu_type, r.cost_per_hour, r.start_time, r.end_time, r.seconds, r.total_cost)
        for r in rows
    )
    cost = JobCost(first.job_id, first.organization_id, first.user_id, lines, first.currency)
    return RecordedCost(cost, max(r.created_at for r in rows))


class SqlUnitOfWork(BillingUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        return await consumers.claim(self.session, consumer, event_id)

    async def add_job_cost(self, cost: JobCost) -> bool:
        rows = [
            {
                "id": uuid.uuid4(),
                "organization_id": cost.organization_id,
                "user_id": cost.user_id,
                "job_id": cost.job_id,
                "gpu_id": line.gpu_id,
                "gpu_type": line.gpu_type,
                "start_time": line.start_time,
                "end_time": line.end_time,
                "seconds": line.seconds,
                "cost_per_hour": line.cost_per_hour,
                "total_cost": line.cost,
                "currency": cost.currency,
            }
            for line in cost.lines
        ]
        # UNIQUE (job_id, gpu_id): the same job under another event id inserts nothing.
        stmt = (
            insert(COSTS)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["job_id", "gpu_id"])
            .returning(COSTS.c.id)
        )
        return len((await self.session.execute(stmt)).all()) == len(rows)

    async def announce_cost(self, cost: JobCost) -> None:
        await outbox.record(self.session, topics.COSTS, cost_recorded(cost), key=str(cost.job_id))

    async def job_cost(self, job_id: UUID) -> RecordedCost | None:
        rows = (
            await self.session.execute(select(COSTS).where(COSTS.c.job_id == job_id).order_by(COSTS.c.gpu_id))
        ).all()
        return _recorded(rows) if rows else None

    async def costs(self, after: tuple[datetime, UUID] | None, limit: int) -> list[RecordedCost]:
        recorded = func.max(COSTS.c.created_at).label("recorded_at")
        jobs = select(COSTS.c.job_id, recorded).group_by(COSTS.c.job_id)
        if after is not None:
            jobs = jobs.having(tuple_(func.max(COSTS.c.created_at), COSTS.c.job_id) < tuple_(*after))
        jobs = jobs.order_by(recorded.desc(), COSTS.c.job_id.desc()).limit(limit)
        ids = [r.job_id for r in (await self.session.execute(jobs)).all()]
        if not ids:
            return []
        rows = (
            await self.session.execute(select(COSTS).where(COSTS.c.job_id.in_(ids)).order_by(COSTS.c.gpu_id))
        ).all()
        by_job: dict[UUID, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        return [_recorded(by_job[i]) for i in ids]


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    return db.unit_of_work(SqlUnitOfWork)  # type: ignore[return-value]
