"""The cost summary in SQL, and the running-attempt rows it values (one GPU of one held attempt each).

One statement sums a window for one organization: the ended attempts' lines and the running attempts'
GPUs are cut into parts at UTC midnights and at the window's edges (``generate_series`` over the days
each one spans), each part is valued (domain/summary.py says how), and ``GROUPING SETS`` gives the
groups and the row over all of them at once. Nothing is summed in Python but the few groups' money."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.running import RunningAttempt
from ..domain.summary import CostGroup, GroupBy, GroupedSums, Window, empty_group, money, seconds
from .orm import RunningGpuRow

RUNNING: Table = RunningGpuRow.__table__  # type: ignore[attr-defined]

# The group key of each grouping, over a part's columns (never a caller's text: a fixed choice).
_KEYS: dict[str, str] = {
    "day": "to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "gpu_type": "gpu_type",
    "project": "coalesce(project_id::text, '')",  # "" = no project
}

# ``day`` runs over the UTC days a span touches inside the window; 24 hours, not '1 day', so that the
# session's time zone (DST) can never stretch one. ``R(t)`` as in domain/summary.py.
_SUMMARY = """
WITH ended AS (
    SELECT job_id, gpu_type, project_id, start_time AS s, end_time AS e, total_cost - credit AS net
    FROM cost_tracking
    WHERE organization_id = :org AND end_time > :t0 AND start_time < :t1
      AND outcome IS DISTINCT FROM 'requeued'
      AND (CAST(:project AS uuid) IS NULL OR project_id = CAST(:project AS uuid))
), ended_parts AS (
    SELECT job_id, gpu_type, project_id, day, s, e, net,
           greatest(s, day, :t0) AS a, least(e, day + interval '24 hours', :t1) AS b
    FROM ended,
         generate_series(date_trunc('day', greatest(s, :t0), 'UTC'), least(e, :t1), interval '24 hours') AS day
), running AS (
    SELECT job_id, gpu_type, project_id, start_time AS s, least(:as_of, :t1) AS e, cost_per_hour
    FROM running_attempts
    WHERE :include_running AND organization_id = :org AND ended_at IS NULL
      AND start_time < least(:as_of, :t1)
      AND (CAST(:project AS uuid) IS NULL OR project_id = CAST(:project AS uuid))
), running_parts AS (
    SELECT job_id, gpu_type, project_id, day, cost_per_hour,
           greatest(s, day, :t0) AS a, least(e, day + interval '24 hours') AS b
    FROM running,
         generate_series(date_trunc('day', greatest(s, :t0), 'UTC'), e, interval '24 hours') AS day
), parts AS (
    SELECT job_id, gpu_type, project_id, day, extract(epoch FROM b - a) AS seconds,
           (CASE WHEN b >= e THEN net
                 ELSE round(net * extract(epoch FROM b - s) / extract(epoch FROM e - s), 8) END)
         - (CASE WHEN a <= s THEN 0
                 ELSE round(net * extract(epoch FROM a - s) / extract(epoch FROM e - s), 8) END) AS cost,
           0::numeric AS running_cost
    FROM ended_parts WHERE b > a
    UNION ALL
    SELECT job_id, gpu_type, project_id, day, extract(epoch FROM b - a), 0::numeric,
           cost_per_hour * extract(epoch FROM b - a) / 3600
    FROM running_parts WHERE b > a
)
SELECT {key} AS key, GROUPING({key}) = 1 AS is_total, sum(seconds) AS gpu_seconds, sum(cost) AS cost,
       sum(running_cost) AS running_cost, count(DISTINCT job_id) AS jobs
FROM parts
GROUP BY GROUPING SETS (({key}), ())
"""

_STATEMENTS = {by: text(_SUMMARY.format(key=key)) for by, key in _KEYS.items()}


def _group(row: Any, key: str) -> CostGroup:
    return CostGroup(
        key=key,
        gpu_seconds=seconds(row.gpu_seconds),
        cost=money(row.cost),
        running_cost=money(row.running_cost),
        jobs=int(row.jobs or 0),
    )


async def grouped_sums(
    session: AsyncSession,
    organization_id: UUID,
    by: GroupBy,
    win: Window,
    as_of: datetime,
    include_running: bool,
    *,
    project: UUID | None = None,
) -> GroupedSums:
    """``project``: only that project's costs (None: every project's and those of none)."""
    params = {
        "org": organization_id,
        "t0": win.start,
        "t1": win.end,
        "as_of": as_of,
        "include_running": include_running,
        "project": project,
    }
    rows = (await session.execute(_STATEMENTS[by], params)).all()
    groups = [_group(r, r.key) for r in rows if not r.is_total]
    total = next((_group(r, "") for r in rows if r.is_total), None)
    return GroupedSums(groups, total or empty_group())


async def track_running(session: AsyncSession, attempt: RunningAttempt) -> int:
    """Record the attempt's GPUs as held (idempotent), unless the job already billed this attempt or a
    later one (a replayed event of an attempt that is over); end any earlier attempt of the job still
    recorded as running (a job holds one attempt's GPUs at a time). Returns the GPUs recorded."""
    await session.execute(
        update(RUNNING)
        .where(
            RUNNING.c.job_id == attempt.job_id,
            RUNNING.c.attempt < attempt.attempt,
            RUNNING.c.ended_at.is_(None),
        )
        .values(ended_at=attempt.scheduled_at)
    )
    billed = text("SELECT EXISTS (SELECT 1 FROM cost_tracking WHERE job_id = :job AND attempt >= :attempt)")
    if (await session.execute(billed, {"job": attempt.job_id, "attempt": attempt.attempt})).scalar_one():
        return 0
    rows = [
        {
            "organization_id": attempt.organization_id,
            "user_id": attempt.user_id,
            "project_id": attempt.project_id,
            "job_id": attempt.job_id,
            "attempt": attempt.attempt,
            "gpu_id": gpu.gpu_id,
            "gpu_type": gpu.gpu_type,
            "cost_per_hour": gpu.cost_per_hour,
            "start_time": attempt.scheduled_at,
        }
        for gpu in attempt.allocation
    ]
    if not rows:
        return 0
    stmt = (
        insert(RUNNING)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["job_id", "attempt", "gpu_id"])
        .returning(RUNNING.c.gpu_id)
    )
    return len((await session.execute(stmt)).all())


async def end_running(session: AsyncSession, job_id: UUID, attempt: int, at: datetime) -> None:
    """The attempt (and any earlier one) no longer holds GPUs: its rows become tombstones."""
    await session.execute(
        update(RUNNING)
        .where(RUNNING.c.job_id == job_id, RUNNING.c.attempt <= attempt, RUNNING.c.ended_at.is_(None))
        .values(ended_at=at)
    )


# track_running for a batch, one statement: end the earlier attempts of each job still running, and
# record each attempt's GPUs unless the job billed this attempt or a later one. The two parts touch
# different rows (earlier attempts / this one), so running them as one statement changes nothing.
_TRACK_MANY = text(
    "WITH attempts AS (SELECT * FROM unnest(CAST(:a_jobs AS uuid[]), CAST(:a_attempts AS integer[]), "
    "CAST(:a_starts AS timestamptz[])) AS a(job_id, attempt, start_time)), "
    "ended AS (UPDATE running_attempts AS r SET ended_at = a.start_time FROM attempts AS a "
    "WHERE r.job_id = a.job_id AND r.attempt < a.attempt AND r.ended_at IS NULL RETURNING 1) "
    "INSERT INTO running_attempts (organization_id, user_id, project_id, job_id, attempt, gpu_id, gpu_type, "
    "cost_per_hour, start_time) "
    "SELECT g.* FROM unnest(CAST(:orgs AS uuid[]), CAST(:users AS uuid[]), CAST(:projects AS uuid[]), "
    "CAST(:jobs AS uuid[]), CAST(:attempts AS integer[]), CAST(:gpus AS uuid[]), CAST(:types AS text[]), "
    "CAST(:prices AS numeric[]), CAST(:starts AS timestamptz[])) AS g(organization_id, user_id, "
    "project_id, job_id, attempt, gpu_id, gpu_type, cost_per_hour, start_time) "
    "WHERE NOT EXISTS (SELECT 1 FROM cost_tracking c WHERE c.job_id = g.job_id AND c.attempt >= g.attempt) "
    "ON CONFLICT (job_id, attempt, gpu_id) DO NOTHING"
)
_END_MANY = text(
    "UPDATE running_attempts AS r SET ended_at = e.at FROM unnest(CAST(:jobs AS uuid[]), "
    "CAST(:attempts AS integer[]), CAST(:ats AS timestamptz[])) AS e(job_id, attempt, at) "
    "WHERE r.job_id = e.job_id AND r.attempt <= e.attempt AND r.ended_at IS NULL"
)


async def track_running_many(session: AsyncSession, attempts: Sequence[RunningAttempt]) -> None:
    """:func:`track_running` for attempts with at most one attempt number per job, in one statement
    (a GPU named twice, by a scheduled and a started event, is recorded once, at its first mention)."""
    first: dict[UUID, RunningAttempt] = {}
    gpus: dict[tuple[UUID, int, UUID], tuple[RunningAttempt, Any]] = {}
    for a in attempts:
        first.setdefault(a.job_id, a)
        for gpu in a.allocation:
            gpus.setdefault((a.job_id, a.attempt, gpu.gpu_id), (a, gpu))
    if not first:
        return
    rows = list(gpus.values())
    await session.execute(
        _TRACK_MANY,
        {
            "a_jobs": [a.job_id for a in first.values()],
            "a_attempts": [a.attempt for a in first.values()],
            "a_starts": [a.scheduled_at for a in first.values()],
            "orgs": [a.organization_id for a, _ in rows],
            "users": [a.user_id for a, _ in rows],
            "projects": [a.project_id for a, _ in rows],
            "jobs": [a.job_id for a, _ in rows],
            "attempts": [a.attempt for a, _ in rows],
            "gpus": [g.gpu_id for _, g in rows],
            "types": [g.gpu_type for _, g in rows],
            "prices": [g.cost_per_hour for _, g in rows],
            "starts": [a.scheduled_at for a, _ in rows],
        },
    )


async def end_running_many(session: AsyncSession, ends: Sequence[tuple[UUID, int, datetime]]) -> None:
    """:func:`end_running` for (job, attempt, at) with at most one per job, in one statement."""
    if ends:
        await session.execute(
            _END_MANY,
            {
                "jobs": [j for j, _, _ in ends],
                "attempts": [a for _, a, _ in ends],
                "ats": [t for _, _, t in ends],
            },
        )


async def delete_ended_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        RUNNING.delete().where(RUNNING.c.ended_at.is_not(None), RUNNING.c.ended_at < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
