"""The job-output unit of work over PostgreSQL (tables of migrations/monitoring/002_job_output.sql and
the parked chunks and allocation history of 003_attribution.sql).

Writes run with ``system=True`` (the consumers); reads run as the tenant, so row-level security hides
another organization's output whatever the query says."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.output import MAX_CHUNK_BYTES
from shared.db import Database

from ..service_layer.output_ports import (
    AttemptKey,
    OutputUnitOfWork,
    OutputUnitOfWorkFactory,
    ParkedChunk,
    StoredAttempt,
)
from .allocations import SqlAllocations

_COLUMNS = (
    "organization_id, job_id, attempt, head_bytes, tail_bytes, received_bytes, eof, complete, incomplete, "
    "ended_at, project_id"
)
_LOCK = text(f"SELECT {_COLUMNS} FROM job_output WHERE job_id = :j AND attempt = :a FOR UPDATE")
_LOCK_MANY = text(
    f"SELECT {_COLUMNS} FROM job_output"
    " JOIN unnest(CAST(:j AS uuid[]), CAST(:a AS int[])) AS k(job_id, attempt) USING (job_id, attempt)"
    " ORDER BY job_id, attempt FOR UPDATE OF job_output"
)
_CREATE = text(
    """
    INSERT INTO job_output (job_id, attempt, organization_id, project_id, head_bytes, tail_bytes)
    VALUES (:j, :a, :org, :project, :head, :tail)
    ON CONFLICT (job_id, attempt) DO NOTHING
    """
)
# A batch's attempts, in key order (the caller sorts): the statements' text never changes with its size.
_CREATE_MANY = text(
    """
    INSERT INTO job_output (job_id, attempt, organization_id, project_id, head_bytes, tail_bytes)
    SELECT * FROM unnest(CAST(:j AS uuid[]), CAST(:a AS int[]), CAST(:org AS uuid[]),
                         CAST(:project AS uuid[]), CAST(:head AS bigint[]), CAST(:tail AS bigint[]))
    ON CONFLICT (job_id, attempt) DO NOTHING
    """
)
_SET_PROJECTS = text(
    """
    UPDATE job_output o SET project_id = u.p, updated_at = now()
      FROM unnest(CAST(:j AS uuid[]), CAST(:a AS int[]), CAST(:project AS uuid[])) AS u(j, a, p)
     WHERE o.job_id = u.j AND o.attempt = u.a AND o.project_id IS NULL AND u.p IS NOT NULL
    """
)
# Only where none is recorded (migrations/monitoring/004): a job's project never changes.
_SET_PROJECT = text(
    """
    UPDATE job_output SET project_id = :project, updated_at = now()
    WHERE job_id = :j AND attempt = :a AND project_id IS NULL
    """
)
_SAVE = text(
    """
    UPDATE job_output SET received_bytes = :received, eof = :eof, complete = :complete,
                          incomplete = :incomplete, updated_at = now()
    WHERE job_id = :j AND attempt = :a
    """
)
_ADD_CHUNK = text(
    """
    INSERT INTO job_output_chunks (job_id, attempt, byte_offset, organization_id, data)
    VALUES (:j, :a, :o, :org, :data)
    ON CONFLICT (job_id, attempt, byte_offset) DO NOTHING
    RETURNING 1
    """
)
_DROP_TAIL = text(
    """
    DELETE FROM job_output_chunks
    WHERE job_id = :j AND attempt = :a AND byte_offset >= :head AND byte_offset + length(data) <= :raw
    """
)
# An attempt first heard of through its end is created by the caller before this runs.
# Every (job, attempt, organization) of a batch in one statement; an attempt named twice is updated,
# and returned, once (UPDATE ... FROM uses one of its join rows).
_MARK_ENDED = text(
    """
    UPDATE job_output o SET ended_at = now(), updated_at = now()
    FROM unnest(CAST(:j AS uuid[]), CAST(:a AS int[]), CAST(:org AS uuid[])) AS e(job_id, attempt, org)
    WHERE o.job_id = e.job_id AND o.attempt = e.attempt AND o.organization_id = e.org
      AND o.ended_at IS NULL
    RETURNING o.job_id, o.attempt
    """
)
_FIND = text(f"SELECT {_COLUMNS} FROM job_output WHERE job_id = :j AND attempt = :a")
_LATEST = text(f"SELECT {_COLUMNS} FROM job_output WHERE job_id = :j ORDER BY attempt DESC LIMIT 1")
# Every chunk overlapping [start, end): none is longer than MAX_CHUNK_BYTES, so the primary key's
# range (byte_offset > start - MAX_CHUNK_BYTES) finds them all without scanning the attempt.
_RAW = text(
    """
    SELECT byte_offset, data FROM job_output_chunks
    WHERE job_id = :j AND attempt = :a AND byte_offset < :end AND byte_offset > CAST(:start AS bigint) - CAST(:max AS bigint)
      AND byte_offset + length(data) > CAST(:start AS bigint)
    ORDER BY byte_offset
    """
)
_COMPLETE_ENDED = text(
    """
    UPDATE job_output SET complete = true, incomplete = true, updated_at = now()
    WHERE NOT complete AND ended_at IS NOT NULL AND ended_at < now() - make_interval(secs => :grace)
      AND NOT EXISTS (SELECT 1 FROM job_output_unplaced u
                      WHERE u.job_id = job_output.job_id AND u.attempt = job_output.attempt)
    RETURNING job_id, attempt
    """
)
_DELETE_OLDER = text("DELETE FROM job_output WHERE updated_at < now() - make_interval(days => :days)")
_PARK = text(
    """
    INSERT INTO job_output_unplaced (job_id, attempt, node_id, byte_offset, data, eof)
    VALUES (:j, :a, :n, :o, :data, :eof)
    ON CONFLICT (job_id, attempt, node_id, byte_offset) DO NOTHING
    RETURNING 1
    """
)
_TAKE_PARKED = text(
    """
    DELETE FROM job_output_unplaced WHERE job_id = :j AND attempt = :a
    RETURNING node_id, job_id, attempt, byte_offset, data, eof
    """
)
_DELETE_PARKED = text(
    "DELETE FROM job_output_unplaced WHERE received_at < now() - make_interval(secs => :secs)"
)


def _row(r: Row) -> StoredAttempt:
    return StoredAttempt(
        organization_id=r.organization_id,
        job_id=r.job_id,
        attempt=r.attempt,
        head=r.head_bytes,
        tail=r.tail_bytes,
        received=r.received_bytes,
        eof=r.eof,
        complete=r.complete,
        incomplete=r.incomplete,
        ended_at=r.ended_at,
        project_id=r.project_id,
    )


class SqlOutputUnitOfWork(OutputUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.allocations = SqlAllocations(session)

    async def park_chunk(self, chunk: ParkedChunk) -> bool:
        params = {
            "j": chunk.job_id,
            "a": chunk.attempt,
            "n": chunk.node_id,
            "o": chunk.offset,
            "data": chunk.data,
            "eof": chunk.eof,
        }
        return (await self.session.execute(_PARK, params)).first() is not None

    async def take_parked(self, job_id: UUID, attempt: int) -> list[ParkedChunk]:
        rows = await self.session.execute(_TAKE_PARKED, {"j": job_id, "a": attempt})
        parked = [
            ParkedChunk(r.node_id, r.job_id, r.attempt, r.byte_offset, bytes(r.data), r.eof) for r in rows
        ]
        return sorted(parked, key=lambda c: (c.offset, c.node_id.bytes))

    async def delete_parked_older_than(self, seconds: float) -> int:
        result = await self.session.execute(_DELETE_PARKED, {"secs": seconds})
        return int(getattr(result, "rowcount", 0) or 0)

    async def lock_attempt(self, job_id: UUID, attempt: int) -> StoredAttempt | None:
        r = (await self.session.execute(_LOCK, {"j": job_id, "a": attempt})).first()
        return _row(r) if r else None

    async def lock_attempt_rows(self, keys: Sequence[AttemptKey]) -> dict[AttemptKey, StoredAttempt]:
        if not keys:
            return {}
        rows = await self.session.execute(_LOCK_MANY, {"j": [k[0] for k in keys], "a": [k[1] for k in keys]})
        return {(r.job_id, r.attempt): _row(r) for r in rows}

    async def create_attempt(self, row: StoredAttempt) -> StoredAttempt:
        params = {"j": row.job_id, "a": row.attempt, "org": row.organization_id, "project": row.project_id}
        await self.session.execute(_CREATE, {**params, "head": row.head, "tail": row.tail})
        stored = await self.lock_attempt(row.job_id, row.attempt)
        assert stored is not None
        return stored

    async def save_attempt(self, row: StoredAttempt) -> None:
        await self.session.execute(
            _SAVE,
            {
                "j": row.job_id,
                "a": row.attempt,
                "received": row.received,
                "eof": row.eof,
                "complete": row.complete,
                "incomplete": row.incomplete,
            },
        )

    async def record_attempts(self, rows: Sequence[StoredAttempt]) -> None:
        if not rows:
            return
        columns = {
            "j": [r.job_id for r in rows],
            "a": [r.attempt for r in rows],
            "org": [r.organization_id for r in rows],
            "project": [r.project_id for r in rows],
            "head": [r.head for r in rows],
            "tail": [r.tail for r in rows],
        }
        await self.session.execute(_CREATE_MANY, columns)
        if any(r.project_id is not None for r in rows):
            await self.session.execute(_SET_PROJECTS, columns)

    async def set_project(self, job_id: UUID, attempt: int, project_id: UUID) -> None:
        await self.session.execute(_SET_PROJECT, {"j": job_id, "a": attempt, "project": project_id})

    async def add_chunk(self, row: StoredAttempt, offset: int, data: bytes) -> bool:
        params = {"j": row.job_id, "a": row.attempt, "o": offset, "org": row.organization_id, "data": data}
        return (await self.session.execute(_ADD_CHUNK, params)).first() is not None

    async def drop_tail_before(self, row: StoredAttempt, raw: int) -> int:
        result = await self.session.execute(
            _DROP_TAIL, {"j": row.job_id, "a": row.attempt, "head": row.head, "raw": raw}
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def mark_ended(self, ended: Sequence[tuple[UUID, UUID, int]]) -> list[AttemptKey]:
        if not ended:
            return []
        params = {"org": [e[0] for e in ended], "j": [e[1] for e in ended], "a": [e[2] for e in ended]}
        return [(r.job_id, r.attempt) for r in await self.session.execute(_MARK_ENDED, params)]

    async def find_attempt(self, job_id: UUID, attempt: int | None) -> StoredAttempt | None:
        if attempt is None:
            r = (await self.session.execute(_LATEST, {"j": job_id})).first()
        else:
            r = (await self.session.execute(_FIND, {"j": job_id, "a": attempt})).first()
        return _row(r) if r else None

    async def raw_bytes(self, job_id: UUID, attempt: int, start: int, end: int) -> bytes:
        rows = await self.session.execute(
            _RAW, {"j": job_id, "a": attempt, "start": start, "end": end, "max": MAX_CHUNK_BYTES}
        )
        out = bytearray()
        for offset, data in rows:
            lo, hi = max(start, offset), min(end, offset + len(data))
            out += bytes(data)[lo - offset : hi - offset]
        return bytes(out)

    async def complete_ended(self, grace_seconds: float) -> list[AttemptKey]:
        rows = await self.session.execute(_COMPLETE_ENDED, {"grace": grace_seconds})
        return [(r.job_id, r.attempt) for r in rows]

    async def delete_older_than(self, days: int) -> int:
        result = await self.session.execute(_DELETE_OLDER, {"days": days})
        return int(getattr(result, "rowcount", 0) or 0)


def sql_output_unit_of_work(db: Database) -> OutputUnitOfWorkFactory:
    return db.unit_of_work(SqlOutputUnitOfWork)  # type: ignore[return-value]
