"""A job and its life cycle.

    queued --schedule--> scheduled --start--> running --finish--> succeeded | failed
       |                     |                   |
       +--cancel--> cancelled (at once)          +--finish(cancelled)--> cancelled
                             +--cancel: cancel requested; cancelled when the agent reports it stopped

Terminal states (succeeded, failed, cancelled) accept nothing more: a cancel is refused, a late agent
report is a no-op (agents retry, so reports arrive twice). Each change appends a status-history entry
and records a :class:`JobChanged` carrying a snapshot of the job right after it; the repository turns
those into outbox events in the same transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from shared.errors import FailedPrecondition

from .spec import JobSpec

MAX_OUTPUT_TAIL = 16_000
MAX_ERROR_MESSAGE = 2_000


class JobStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ON_NODE = frozenset({JobStatus.SCHEDULED, JobStatus.RUNNING})


class InvalidTransition(FailedPrecondition):
    """A change the life cycle does not allow (a bug or a confused caller, never a retry)."""


class JobAlreadyFinished(FailedPrecondition):
    pass


@dataclass(frozen=True)
class GpuAllocation:
    """One GPU held by a job, priced when allocated (later price changes do not touch running jobs)."""

    gpu_id: UUID
    gpu_index: int
    gpu_type: str
    cost_per_hour: Decimal


@dataclass(frozen=True)
class StatusChange:
    status: JobStatus
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What an agent reports when a job's process is gone."""

    exit_code: int | None = None
    cancelled: bool = False
    error_message: str | None = None
    output_tail: str | None = None


@dataclass(frozen=True)
class JobChanged:
    """``kind`` is the event name: submitted, scheduled, started, succeeded, failed or cancelled."""

    kind: str
    previous_status: JobStatus | None
    reason: str | None
    job: Job


def _clean(text: str | None, limit: int, keep_end: bool) -> str | None:
    if not text:
        return None
    text = text.replace("\x00", "")  # PostgreSQL TEXT cannot store NUL
    return text[-limit:] if keep_end else text[:limit]


@dataclass(eq=False)
class Job:
    id: UUID
    organization_id: UUID
    user_id: UUID | None
    name: str | None
    command: str
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str | None
    priority: int
    webhook_url: str | None
    idempotency_key: str | None
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    node_id: UUID | None = None
    allocation: tuple[GpuAllocation, ...] = ()
    exit_code: int | None = None
    output_tail: str | None = None
    error_message: str | None = None
    cancel_requested_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None  # written by the repository (the database clock)
    # Known history (loaded on demand), the entries added in this unit of work, and recorded events.
    history: list[StatusChange] = field(default_factory=list)
    new_history: list[StatusChange] = field(default_factory=list)
    events: list[JobChanged] = field(default_factory=list)

    @classmethod
    def submit(
        cls, spec: JobSpec, *, job_id: UUID, organization_id: UUID, user_id: UUID | None, at: datetime
    ) -> Job:
        job = cls(
            id=job_id,
            organization_id=organization_id,
            user_id=user_id,
            name=spec.name,
            command=spec.command,
            gpu_count=spec.gpu_count,
            gpu_memory_mb=spec.gpu_memory_mb,
            gpu_type=spec.gpu_type,
            priority=spec.priority,
            webhook_url=spec.webhook_url,
            idempotency_key=spec.idempotency_key,
            created_at=at,
        )
        job._changed("submitted", None, at, "submitted")
        return job

    @property
    def gpu_ids(self) -> tuple[UUID, ...]:
        return tuple(a.gpu_id for a in self.allocation)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None

    def schedule(self, node_id: UUID, allocation: tuple[GpuAllocation, ...], at: datetime) -> None:
        if self.status is not JobStatus.QUEUED:
            raise InvalidTransition(f"cannot schedule a {self.status} job")
        if len(allocation) != self.gpu_count or len({a.gpu_id for a in allocation}) != self.gpu_count:
            raise InvalidTransition(f"job needs {self.gpu_count} distinct GPUs, got {len(allocation)}")
        self.node_id = node_id
        self.allocation = tuple(allocation)
        self.scheduled_at = at
        self._changed("scheduled", JobStatus.SCHEDULED, at, f"placed on node {node_id}")

    def start(self, reported_at: datetime | None, now: datetime) -> bool:
        """The agent launched the process. False (no change) for a duplicate or late report."""
        if self.status is JobStatus.QUEUED:
            raise InvalidTransition("a queued job has no node to start on")
        if self.status is not JobStatus.SCHEDULED:
            return False
        assert self.scheduled_at is not None
        self.started_at = max(min(reported_at or now, now), self.scheduled_at)
        self._changed("started", JobStatus.RUNNING, self.started_at, "started on node")
        return True

    def finish(self, outcome: Outcome, reported_at: datetime | None, now: datetime) -> bool:
        """The process is gone. False (no change) when the job had already finished.

        ``finished_at`` is when the GPUs were released, so it is clamped into [scheduled_at (and
        started_at), now]: an agent clock running ahead or behind must not bill time that never was."""
        if self.status is JobStatus.QUEUED:
            raise InvalidTransition("a queued job has not run")
        if self.is_terminal:
            return False
        assert self.scheduled_at is not None
        floor = max(self.scheduled_at, self.started_at or self.scheduled_at)
        self.finished_at = max(min(reported_at or now, now), floor)
        self.exit_code = outcome.exit_code
        self.output_tail = _clean(outcome.output_tail, MAX_OUTPUT_TAIL, keep_end=True)
        self.error_message = _clean(outcome.error_message, MAX_ERROR_MESSAGE, keep_end=False)
        if outcome.cancelled:
            status, reason = JobStatus.CANCELLED, "stopped on the node after a cancel request"
        elif outcome.exit_code == 0:
            status, reason = JobStatus.SUCCEEDED, "exit code 0"
        elif outcome.exit_code is not None:
            status, reason = JobStatus.FAILED, f"exit code {outcome.exit_code}"
        else:
            status, reason = JobStatus.FAILED, self.error_message or "ended without an exit code"
        self._changed(status.value, status, self.finished_at, reason)
        return True

    def cancel(self, at: datetime, reason: str | None = None) -> bool:
        """A tenant's cancel. Returns True when the job is cancelled now (it held no GPUs); a job on a
        node only gets ``cancel_requested`` (the agent stops it and reports back). Repeating a cancel
        request is harmless; cancelling a finished job is refused."""
        if self.is_terminal:
            raise JobAlreadyFinished(f"job is already {self.status}")
        if self.status is JobStatus.QUEUED:
            self.cancel_requested_at = at
            self.finished_at = at
            self._changed("cancelled", JobStatus.CANCELLED, at, reason or "cancelled while queued")
            return True
        if self.cancel_requested_at is None:
            self.cancel_requested_at = at
        return False

    def _changed(self, kind: str, new_status: JobStatus | None, at: datetime, reason: str | None) -> None:
        previous = None if new_status is None else self.status
        if new_status is not None:
            self.status = new_status
        entry = StatusChange(self.status, at, reason)
        self.history.append(entry)
        self.new_history.append(entry)
        snapshot = dataclasses.replace(self, history=[], new_history=[], events=[])
        self.events.append(JobChanged(kind, previous, reason, snapshot))
