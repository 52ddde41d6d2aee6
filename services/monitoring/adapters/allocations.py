"""The allocation history over PostgreSQL (``gpu_allocations``, migrations/monitoring/003) and the
advisory locks that order sample and allocation writes per GPU (service_layer/allocation_ports.py).

The rule deciding whose a sample is lives in SQL twice, in :data:`HOLDER` (used when a sample is
inserted, adapters/repository.py, and when holds change, :data:`_REATTRIBUTE`); it is the same rule as
:func:`services.monitoring.domain.allocations.holder`."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.allocations import Hold, HoldKey, Placement, Span
from ..service_layer.allocation_ports import AllocationStore, AttemptKey

# The hold covering sample ``s`` (gpu_id, node_id, ts): a lateral subquery served by the
# (gpu_id, started_at) index.
HOLDER = """
    SELECT a.organization_id, a.job_id FROM gpu_allocations a
    WHERE a.gpu_id = {gpu} AND a.node_id = {node} AND a.started_at <= {ts}
      AND (a.ended_at IS NULL OR {ts} < a.ended_at)
    ORDER BY a.started_at DESC, a.attempt DESC
    LIMIT 1
"""

# A project-bound key counts only the samples of its project's jobs: the job a sample was attributed to
# (from its hold, so always this organization's) holds in that project; a job's project never changes.
# Appended to the utilization and series statements over ``gpu_metrics m`` (adapters/repository.py,
# series.py), whose samples are still found by the (organization_id, timestamp) index; each one's check
# probes this table's primary key (job_id first). An unbound key's statements have no such clause.
IN_PROJECT = (
    "AND EXISTS (SELECT 1 FROM gpu_allocations a"
    " WHERE a.job_id = m.job_id AND a.project_id = CAST(:project AS uuid))"
)

# The subquery's ORDER BY fixes the order the locks are taken in (the caller sorts too).
_LOCK_GPUS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
)
# Two int4 keys: a space of its own, apart from the GPUs' single bigint keys.
_LOCK_ATTEMPTS = text(
    "SELECT count(pg_advisory_xact_lock(j, a)) FROM "
    "(SELECT j, a FROM unnest(CAST(:j AS int[]), CAST(:a AS int[])) AS t(j, a) ORDER BY j, a) AS ordered"
)
_HOLDS = text(
    """
    SELECT a.job_id, a.attempt, a.gpu_id, a.node_id, a.organization_id, a.project_id, a.started_at,
           a.ended_at
    FROM gpu_allocations a
    JOIN unnest(CAST(:j AS uuid[]), CAST(:a AS int[]), CAST(:g AS uuid[])) AS k(job_id, attempt, gpu_id)
      ON (a.job_id, a.attempt, a.gpu_id) = (k.job_id, k.attempt, k.gpu_id)
    """
)
_SAVE = text(
    """
    INSERT INTO gpu_allocations (job_id, attempt, gpu_id, node_id, organization_id, project_id,
                                 started_at, ended_at)
    SELECT * FROM unnest(CAST(:j AS uuid[]), CAST(:a AS int[]), CAST(:g AS uuid[]), CAST(:n AS uuid[]),
                         CAST(:o AS uuid[]), CAST(:p AS uuid[]), CAST(:s AS timestamptz[]),
                         CAST(:e AS timestamptz[]))
    ON CONFLICT (job_id, attempt, gpu_id) DO UPDATE
       SET node_id = EXCLUDED.node_id, project_id = EXCLUDED.project_id,
           started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at
    """
)
# No hold covering a sample: the row-valued sub-select yields no row, which sets both columns to NULL.
_REATTRIBUTE = text(
    f"""
    UPDATE gpu_metrics m
    SET (organization_id, job_id) = ({HOLDER.format(gpu="m.gpu_id", node="m.node_id", ts="m.timestamp")})
    FROM unnest(CAST(:g AS uuid[]), CAST(:t0 AS timestamptz[]), CAST(:t1 AS timestamptz[])) AS r(gpu_id, t0, t1)
    WHERE m.gpu_id = r.gpu_id AND m.timestamp >= r.t0 AND (r.t1 IS NULL OR m.timestamp < r.t1)
    """
)
_PLACEMENTS = text(
    """
    SELECT a.job_id, a.attempt, min(a.organization_id::text)::uuid AS organization_id,
           min(a.project_id::text)::uuid AS project_id, array_agg(DISTINCT a.node_id) AS nodes
    FROM gpu_allocations a
    JOIN unnest(CAST(:j AS uuid[]), CAST(:a AS int[])) AS k(job_id, attempt)
      ON (a.job_id, a.attempt) = (k.job_id, k.attempt)
    WHERE a.node_id IS NOT NULL
    GROUP BY a.job_id, a.attempt
    """
)
_DELETE_ENDED = text("DELETE FROM gpu_allocations WHERE ended_at < now() - make_interval(hours => :h)")


def gpu_lock_key(gpu_id: UUID) -> int:
    """A GPU's advisory lock: the first 8 bytes of its UUID as a signed bigint."""
    return int.from_bytes(gpu_id.bytes[:8], "big", signed=True)


def attempt_lock_key(job_id: UUID, attempt: int) -> tuple[int, int]:
    """A job attempt's advisory lock: (crc32 of the job id as a signed int4, the attempt)."""
    crc = zlib.crc32(job_id.bytes)
    return (crc - (1 << 32) if crc >= 1 << 31 else crc, attempt)


class SqlAllocations(AllocationStore):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_gpus(self, gpu_ids: Iterable[UUID]) -> None:
        keys = sorted({gpu_lock_key(g) for g in gpu_ids})
        if keys:
            await self.session.execute(_LOCK_GPUS, {"keys": keys})

    async def lock_attempts(self, keys: Iterable[AttemptKey]) -> None:
        locks = sorted({attempt_lock_key(j, a) for j, a in keys})
        if locks:
            await self.session.execute(
                _LOCK_ATTEMPTS, {"j": [k[0] for k in locks], "a": [k[1] for k in locks]}
            )

    async def holds(self, keys: Sequence[HoldKey]) -> dict[HoldKey, Hold]:
        if not keys:
            return {}
        params = {"j": [k[0] for k in keys], "a": [k[1] for k in keys], "g": [k[2] for k in keys]}
        rows = await self.session.execute(_HOLDS, params)
        found = [
            Hold(
                r.job_id,
                r.attempt,
                r.gpu_id,
                r.node_id,
                r.organization_id,
                r.project_id,
                r.started_at,
                r.ended_at,
            )
            for r in rows
        ]
        return {h.key: h for h in found}

    async def save_holds(self, holds: Sequence[Hold]) -> None:
        if not holds:
            return
        await self.session.execute(
            _SAVE,
            {
                "j": [h.job_id for h in holds],
                "a": [h.attempt for h in holds],
                "g": [h.gpu_id for h in holds],
                "n": [h.node_id for h in holds],
                "o": [h.organization_id for h in holds],
                "p": [h.project_id for h in holds],
                "s": [h.started_at for h in holds],
                "e": [h.ended_at for h in holds],
            },
        )

    async def reattribute(self, spans: Sequence[Span]) -> int:
        if not spans:
            return 0
        params = {
            "g": [s.gpu_id for s in spans],
            "t0": [s.start for s in spans],
            "t1": [s.end for s in spans],
        }
        result = await self.session.execute(_REATTRIBUTE, params)
        return int(getattr(result, "rowcount", 0) or 0)

    async def placements(self, keys: Sequence[AttemptKey]) -> dict[AttemptKey, Placement]:
        if not keys:
            return {}
        rows = await self.session.execute(_PLACEMENTS, {"j": [k[0] for k in keys], "a": [k[1] for k in keys]})
        return {
            (r.job_id, r.attempt): Placement(r.organization_id, frozenset(r.nodes), r.project_id)
            for r in rows
        }

    async def delete_ended_before(self, hours: int) -> int:
        result = await self.session.execute(_DELETE_ENDED, {"h": hours})
        return int(getattr(result, "rowcount", 0) or 0)
