"""What the job-output entrypoints ask of the handlers (service_layer/output_handlers.py)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from ..domain.allocations import Hold


@dataclass(frozen=True)
class OutputChunk:
    """``node_id`` is the node the agent says it is; the chunk is kept only if its attempt was placed
    there. There is no organization: the job topic's is the chunk's."""

    node_id: UUID | None
    job_id: UUID
    attempt: int
    offset: int
    data: bytes
    eof: bool = False


@dataclass(frozen=True)
class StoreOutputChunks:
    """Store a consumed batch of chunks, in their order (replayed ones are skipped by offset)."""

    chunks: tuple[OutputChunk, ...]


@dataclass(frozen=True)
class RecordJobAttempt:
    """A job event: the job (and its ``attempt``) exists; ``ended_attempt`` ended (terminal, requeued);
    ``holds`` the GPUs the event says were held (opened by scheduled/started, closed by the end);
    ``project_id`` the job's project (None: none), kept on its attempts' output rows."""

    organization_id: UUID
    job_id: UUID
    attempt: int
    ended_attempt: int | None = None
    holds: tuple[Hold, ...] = ()
    project_id: UUID | None = None


@dataclass(frozen=True)
class RecordJobAttempts:
    """A batch of job events, applied in one transaction."""

    events: tuple[RecordJobAttempt, ...]


@dataclass(frozen=True)
class CompleteEndedOutput:
    """Mark complete every attempt that ended ``grace_seconds`` ago and whose end of output never came."""

    grace_seconds: float


@dataclass(frozen=True)
class PruneOutput:
    retention_days: int


@dataclass(frozen=True)
class ReadOutput:
    organization_id: UUID
    job_id: UUID
    attempt: int | None
    offset: int
    limit: int
    # The caller's key is bound to this project: another project's job (or one of no project) is not
    # found, exactly like an unknown one (None: unbound, the whole organization's).
    project_id: UUID | None = None


@dataclass(frozen=True)
class FollowOutput:
    organization_id: UUID
    job_id: UUID
    attempt: int | None
    offset: int
    project_id: UUID | None = None  # as ReadOutput's
