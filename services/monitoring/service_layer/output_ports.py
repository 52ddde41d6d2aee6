"""What the job-output handlers need: a unit of work over the stored attempts and chunks
(adapters/output_repository.py over PostgreSQL; tests/unit/monitoring/test_output_*.py use a fake),
and the in-process signal that wakes followers when an attempt's output changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from .allocation_ports import AllocationStore, AttemptKey


@dataclass
class StoredAttempt:
    organization_id: UUID
    job_id: UUID
    attempt: int
    head: int  # the limit in force when the attempt's first byte arrived (a later setting change
    tail: int  # never re-cuts what is stored)
    received: int = 0
    eof: bool = False
    complete: bool = False
    incomplete: bool = False  # completed by its end on the job topic, without the agent's end of output
    ended_at: datetime | None = None
    # The job's project as the job topic said it (None: none, or recorded before output kept projects).
    project_id: UUID | None = None


@dataclass(frozen=True)
class ParkedChunk:
    """A chunk kept aside until its attempt's placement is known (docs/attribution.md)."""

    node_id: UUID
    job_id: UUID
    attempt: int
    offset: int
    data: bytes
    eof: bool = False


class OutputUnitOfWork(Protocol):
    allocations: AllocationStore

    async def park_chunk(self, chunk: ParkedChunk) -> bool:
        """Keep ``chunk`` aside (once per node and offset); False when it was parked already."""

    async def take_parked(self, job_id: UUID, attempt: int) -> list[ParkedChunk]:
        """Remove and return the attempt's parked chunks, in offset order."""

    async def delete_parked_older_than(self, seconds: float) -> int: ...

    async def lock_attempt(self, job_id: UUID, attempt: int) -> StoredAttempt | None:
        """The attempt, locked for update until the unit of work ends (None: not known)."""

    async def lock_attempt_rows(self, keys: Sequence[AttemptKey]) -> dict[AttemptKey, StoredAttempt]:
        """:meth:`lock_attempt` for every key at once (one statement); the known ones."""

    async def create_attempt(self, row: StoredAttempt) -> StoredAttempt:
        """Insert unless present; returns the stored one, locked."""

    async def record_attempts(self, rows: Sequence[StoredAttempt]) -> None:
        """Insert the rows not present; where a present one has no project and the row has, record it
        (a row from before output kept projects). A few statements for any number of rows."""

    async def save_attempt(self, row: StoredAttempt) -> None: ...

    async def set_project(self, job_id: UUID, attempt: int, project_id: UUID) -> None:
        """Record the attempt's project where none is recorded (a row from before output kept them)."""

    async def add_chunk(self, row: StoredAttempt, offset: int, data: bytes) -> bool:
        """Store ``data`` at raw ``offset``; False when a chunk at that offset was already stored."""

    async def drop_tail_before(self, row: StoredAttempt, raw: int) -> int:
        """Delete the chunks past the head that end at or before raw ``raw``; returns how many."""

    async def mark_ended(self, ended: Sequence[tuple[UUID, UUID, int]]) -> list[AttemptKey]:
        """Record that each (organization, job, attempt) ended, once; the attempts this call recorded
        (one statement for the whole batch)."""

    async def find_attempt(self, job_id: UUID, attempt: int | None) -> StoredAttempt | None:
        """The attempt (None: the job's latest one) as the unit of work's tenant may see it."""

    async def raw_bytes(self, job_id: UUID, attempt: int, start: int, end: int) -> bytes:
        """The stored raw bytes ``[start, end)`` of the attempt."""

    async def complete_ended(self, grace_seconds: float) -> list[AttemptKey]:
        """Mark complete the attempts that ended over ``grace_seconds`` ago without an end of output,
        except those with chunks still parked (their placement has not come yet)."""

    async def delete_older_than(self, days: int) -> int: ...


class OutputUnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[OutputUnitOfWork]: ...


class OutputSignals:
    """Wakes the followers of an attempt after a commit changed it. In-process: a follower served by
    the process that consumes the attempt's partition wakes at once; any other (another replica) finds
    the change at its next safety re-read."""

    def __init__(self) -> None:
        self._waiters: dict[AttemptKey, set[asyncio.Event]] = {}

    @contextmanager
    def subscribe(self, key: AttemptKey) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    def notify(self, keys: Sequence[AttemptKey]) -> None:
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()

    def followers(self) -> int:
        return sum(len(w) for w in self._waiters.values())
