"""Cost lines in PostgreSQL. The caller's transaction decides the tenant scope (RLS does the rest)."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.costs import CostLine, JobCost
from .orm import CostRow

COSTS = CostRow.__table__  # type: ignore[attr-defined]


async def insert_job_cost(session: AsyncSession, cost: JobCost) -> bool:
    """Insert the job's lines; False when they were already there (the job was billed before)."""
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
    stmt = (
        insert(COSTS)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["job_id", "gpu_id"])
        .returning(COSTS.c.id)
    )
    return len((await session.execute(stmt)).all()) == len(rows)


def _job_cost(rows: list) -> tuple[JobCost, datetime]:
    first = rows[0]
    lines = tuple(
        CostLine(r.gpu_id, r.gpu_type, r.cost_per_hour, r.start_time, r.end_time, r.seconds, r.total_cost)
        for r in rows
    )
    return JobCost(first.job_id, first.organization_id, first.user_id, lines, first.currency), max(
        r.created_at for r in rows
    )


async def job_cost(session: AsyncSession, job_id: UUID) -> tuple[JobCost, datetime] | None:
    rows = (
        await session.execute(select(COSTS).where(COSTS.c.job_id == job_id).order_by(COSTS.c.gpu_id))
    ).all()
    return _job_cost(list(rows)) if rows else None


async def page_of_costs(
    session: AsyncSession, limit: int, after: tuple[datetime, UUID] | None
) -> list[tuple[JobCost, datetime]]:
    """Newest first, one entry per job; ``after`` is the (recorded_at, job_id) of the previous page's last."""
    recorded = func.max(COSTS.c.created_at).label("recorded_at")
    jobs = select(COSTS.c.job_id, recorded).group_by(COSTS.c.job_id)
    if after is not None:
        jobs = jobs.having(tuple_(func.max(COSTS.c.created_at), COSTS.c.job_id) < tuple_(*after))
    jobs = jobs.order_by(recorded.desc(), COSTS.c.job_id.desc()).limit(limit)
    ids = [r.job_id for r in (await session.execute(jobs)).all()]
    if not ids:
        return []
    rows = (
        await session.execute(select(COSTS).where(and_(COSTS.c.job_id.in_(ids))).order_by(COSTS.c.gpu_id))
    ).all()
    by_job: dict[UUID, list] = {}
    for row in rows:
        by_job.setdefault(row.job_id, []).append(row)
    return [_job_cost(by_job[i]) for i in ids]
