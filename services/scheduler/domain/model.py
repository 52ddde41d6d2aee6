"""A job and its life cycle.

    queued --schedule--> scheduled --start--> running --finish--> succeeded | failed | timed_out
       |  ^                  |                   |
       |  +---requeue (node or agent lost; a new attempt, bounded)---+
       +--cancel--> cancelled (at once)          +--finish(cancelled)--> cancelled
                             +--cancel: cancel requested; cancelled when the agent reports it stopped

A queued job may be held (not scheduled until released) and re-prioritised. Each run is an attempt,
numbered from 1; reports about an older attempt are ignored.

Terminal states (succeeded, failed, cancelled, timed_out) accept nothing more: a cancel is refused, a
late agent report is a no-op (agents retry, so reports arrive twice). Each change appends a status-history entry
and records a :class:`JobChanged` carrying a snapshot of the job right after it; the repository turns
those into outbox events in the same transaction. A running attempt with a time limit is also warned once
(:meth:`Job.warn_time_limit`, the leader's doing): an event, not a status change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from shared.errors import FailedPrecondition
from shared.time_limit import warning_after, warning_message

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
    TIMED_OUT = "timed_out"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})
ON_NODE = frozenset({JobStatus.SCHEDULED, JobStatus.RUNNING})


class InvalidTransition(FailedPrecondition):
    """A change the life cycle does not allow (a bug or a confused caller, never a retry)."""


class JobAlreadyFinished(FailedPrecondition):
    pass


class JobNotQueued(FailedPrecondition):
    """Hold, release and priority changes apply to queued jobs only."""


@dataclass(frozen=True)
class JobPlacement:
    """One node of a placed job; a gang has several, rank 0 is the master.

    ``address`` is where the other members reach this node for the rendezvous (its host name or
    address label when it was placed, :attr:`..inventory.InventoryGpu.rendezvous_address`; empty in
    placements recorded before addresses were). ``exited``: this member's process exited 0 while
    another member still ran (:meth:`Job.member_exited`)."""

    node_id: UUID
    rank: int
    gpu_ids: tuple[UUID, ...]
    address: str = ""
    exited: bool = False


@dataclass(frozen=True)
class Pending:
    """Why a queued job waits (the engine's reason, as last persisted)."""

    code: str
    message: str


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
    attempt: int = 1


@dataclass(frozen=True)
class Outcome:
    """What an agent reports when a job's process is gone."""

    exit_code: int | None = None
    cancelled: bool = False
    error_message: str | None = None
    output_tail: str | None = None
    timed_out: bool = False

    @property
    def lost(self) -> bool:
        """The infrastructure, not the job, ended it (agents report "lost: ..." with no exit code)."""
        return (
            self.exit_code is None
            and not self.cancelled
            and not self.timed_out
            and (self.error_message or "").startswith("lost:")
        )


@dataclass(frozen=True)
class EndedAttempt:
    """An attempt lost to infrastructure, as it was when it ended. The requeued job's snapshot already
    describes the next attempt (nothing allocated), so billing needs this to record and credit the
    GPU time the lost attempt held."""

    attempt: int
    allocation: tuple[GpuAllocation, ...]
    scheduled_at: datetime | None
    released_at: datetime


@dataclass(frozen=True)
class JobChanged:
    """``kind`` is the event name: submitted, scheduled, started, succeeded, failed, cancelled,
    timed_out, requeued, pending (a queued job's reason, hold or priority changed), or
    time_limit_warning (a running job nears its time limit). ``ended_attempt`` is set on requeued
    only, ``stops_at`` (when the time limit stops the job) on time_limit_warning only."""

    kind: str
    previous_status: JobStatus | None
    reason: str | None
    job: Job
    ended_attempt: EndedAttempt | None = None
    stops_at: datetime | None = None


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
    nodes: int = 1
    cpu_cores: int = 0  # per node
    ram_mb: int = 0  # per node
    time_limit_seconds: int | None = None
    held: bool = False
    no_requeue: bool = False
    attempt: int = 1
    placements: tuple[JobPlacement, ...] = ()
    pending: Pending | None = None
    estimated_start: datetime | None = None
    project_id: UUID | None = None  # the project the job belongs to (None: none); never changes
    image: str | None = None  # container image the job runs in (None: the host sandbox); never changes
    # Preemption: when the job was asked to stop for a reclaim of lent capacity (None: it was not),
    # and how many of its attempts ended so (they do not count against ``max_attempts``).
    preempted_at: datetime | None = None
    preemptions: int = 0
    # The attempt whose time-limit warning was announced (0: none yet): once per attempt, whoever leads.
    time_limit_warned: int = 0
    queue_position: int | None = None  # read-time only: 1-based among the organization's waiting jobs
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
            nodes=spec.nodes,
            cpu_cores=spec.cpu_cores,
            ram_mb=spec.ram_mb,
            time_limit_seconds=spec.time_limit_seconds,
            held=spec.hold,
            no_requeue=spec.no_requeue,
            project_id=spec.project_id,
            image=spec.image,
        )
        if job.held:
            job.pending = HELD
        job._changed("submitted", None, at, "submitted held" if job.held else "submitted")
        return job

    @property
    def node_ids(self) -> tuple[UUID, ...]:
        return tuple(p.node_id for p in self.placements)

    @property
    def total_gpus(self) -> int:
        return self.gpu_count * self.nodes

    @property
    def gpu_ids(self) -> tuple[UUID, ...]:
        return tuple(a.gpu_id for a in self.allocation)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None

    def schedule(
        self,
        node_id: UUID,
        allocation: tuple[GpuAllocation, ...],
        at: datetime,
        placements: tuple[JobPlacement, ...] | None = None,
    ) -> None:
        """Placed: ``allocation`` lists every GPU in rank order; ``placements`` each node (a single-node
        job may leave it out: one placement on ``node_id``)."""
        if self.status is not JobStatus.QUEUED or self.held:
            raise InvalidTransition(f"cannot schedule a {'held' if self.held else self.status} job")
        want = self.total_gpus
        if len(allocation) != want or len({a.gpu_id for a in allocation}) != want:
            raise InvalidTransition(f"job needs {want} distinct GPUs, got {len(allocation)}")
        if placements is None:
            placements = (JobPlacement(node_id, 0, tuple(a.gpu_id for a in allocation)),)
        if len(placements) != self.nodes or len({p.node_id for p in placements}) != self.nodes:
            raise InvalidTransition(f"job needs {self.nodes} distinct nodes, got {len(placements)}")
        self.node_id = placements[0].node_id
        self.placements = tuple(placements)
        self.allocation = tuple(allocation)
        self.scheduled_at = at
        self.pending = None
        self.estimated_start = None
        where = f"node {self.node_id}" if self.nodes == 1 else f"{self.nodes} nodes (rank 0: {self.node_id})"
        self._changed("scheduled", JobStatus.SCHEDULED, at, f"placed on {where}")

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
        elif outcome.timed_out:
            limit = self.time_limit_seconds
            status, reason = JobStatus.TIMED_OUT, f"ended at its time limit ({limit} s)"
        elif outcome.exit_code == 0:
            status, reason = JobStatus.SUCCEEDED, "exit code 0"
        elif outcome.exit_code is not None:
            status, reason = JobStatus.FAILED, f"exit code {outcome.exit_code}"
        else:
            status, reason = JobStatus.FAILED, self.error_message or "ended without an exit code"
        self._changed(status.value, status, self.finished_at, reason)
        return True

    def member_exited(self, node_id: UUID, outcome: Outcome) -> bool:
        """A gang member on ``node_id`` exited 0 while another member still runs: recorded on its
        placement (True), and the job runs on, holding all its GPUs. A gang succeeds with its last
        member's clean exit and ends with the first member that fails, times out, is cancelled or is
        lost: then (and for a single-node job) this is False and the caller ends or requeues the job
        as a whole, which tells the other members to stop."""
        clean = outcome.exit_code == 0 and not outcome.cancelled and not outcome.timed_out
        if len(self.placements) < 2 or self.status not in ON_NODE or not clean:
            return False
        if all(p.exited for p in self.placements if p.node_id != node_id):
            return False
        self.placements = tuple(
            dataclasses.replace(p, exited=True) if p.node_id == node_id else p for p in self.placements
        )
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
            self.held, self.pending, self.estimated_start = False, None, None
            self._changed("cancelled", JobStatus.CANCELLED, at, reason or "cancelled while queued")
            return True
        if self.cancel_requested_at is None:
            self.cancel_requested_at = at
        return False

    def requeue(self, reason: str, at: datetime, max_attempts: int) -> bool:
        """The job's node or agent was lost while it held GPUs. It goes back to the queue as a new
        attempt (True), unless it opted out, used up its attempts, or was being cancelled: then it ends
        (False: failed, or cancelled). A job not on a node is left alone (False)."""
        if self.status not in ON_NODE:
            return False
        if self.cancel_requested:
            self.finish(Outcome(cancelled=True, error_message=reason), None, at)
            return False
        if self.no_requeue or self.attempt - self.preemptions >= max_attempts:
            why = (
                "the job opted out of requeue"
                if self.no_requeue
                else f"attempt {self.attempt} of {max_attempts}"
            )
            self.finish(Outcome(error_message=f"{reason} ({why})"), None, at)
            return False
        # Clamped like finish(): a clock step back must not make the lost attempt's time negative.
        released = max(at, self.scheduled_at) if self.scheduled_at is not None else at
        ended = EndedAttempt(self.attempt, self.allocation, self.scheduled_at, released)
        self.node_id = None
        self.placements = ()
        self.allocation = ()
        self.scheduled_at = self.started_at = None
        self.attempt += 1
        why = f"requeued as attempt {self.attempt}: {reason}"
        self._changed("requeued", JobStatus.QUEUED, at, why, ended_attempt=ended)
        return True

    @property
    def stop_requested(self) -> bool:
        """Its agents must stop it: a cancel, or a preemption."""
        return self.cancel_requested_at is not None or self.preempted_at is not None

    def preempt(self, at: datetime) -> bool:
        """Lent capacity is reclaimed: the job (on a node) is asked to stop; once its agent reports
        it gone it is requeued (:meth:`requeue_preempted`, whose event and history entry carry the
        reason). False (no change) when it is not on a node, opted out of requeue, is being
        cancelled or was asked already."""
        if (
            self.status not in ON_NODE
            or self.no_requeue
            or self.cancel_requested
            or self.preempted_at is not None
        ):
            return False
        self.preempted_at = at
        return True

    def requeue_preempted(self, reason: str, at: datetime) -> None:
        """A preempted attempt ended: the job is queued again as a new attempt, which does not use
        up one of the bounded infrastructure requeues; the ended attempt is credited like a lost
        one (``EndedAttempt`` on the requeued event)."""
        self.preemptions += 1
        self.preempted_at = None
        released = max(at, self.scheduled_at) if self.scheduled_at is not None else at
        ended = EndedAttempt(self.attempt, self.allocation, self.scheduled_at, released)
        self.node_id = None
        self.placements = ()
        self.allocation = ()
        self.scheduled_at = self.started_at = None
        self.attempt += 1
        why = f"requeued as attempt {self.attempt}: {reason}"
        self._changed("requeued", JobStatus.QUEUED, at, why, ended_attempt=ended)

    @property
    def time_limit_warning_due(self) -> datetime | None:
        """When this attempt is to be warned that its time limit nears (the agent's moment:
        :func:`shared.time_limit.warning_after` from its start), or None: it does not run, has no
        limit, was warned already, or is being stopped anyway (a cancel or a preemption: the agent
        does not warn it either)."""
        if (
            self.status is not JobStatus.RUNNING
            or not self.time_limit_seconds
            or self.started_at is None
            or self.time_limit_warned >= self.attempt
            or self.stop_requested
        ):
            return None
        return self.started_at + timedelta(seconds=warning_after(self.time_limit_seconds))

    def warn_time_limit(self, at: datetime) -> bool:
        """Announce that the running attempt nears its time limit (not a status change, no history
        entry). False (no change) before it is due, or when there is nothing to warn (ended,
        requeued, being stopped, warned already)."""
        due = self.time_limit_warning_due
        if due is None or at < due:
            return False
        assert self.started_at is not None and self.time_limit_seconds
        stops_at = self.started_at + timedelta(seconds=self.time_limit_seconds)
        left = max(int((stops_at - at).total_seconds()), 0)
        self.time_limit_warned = self.attempt
        self._record(
            "time_limit_warning",
            JobStatus.RUNNING,
            warning_message(self.time_limit_seconds, left),
            stops_at=stops_at,
        )
        return True

    def _queued(self, what: str) -> None:
        if self.status is not JobStatus.QUEUED:
            raise JobNotQueued(f"only a queued job can be {what}; this one is {self.status}")

    def hold(self, at: datetime) -> bool:
        """Keep a queued job from being scheduled. False: it was held already."""
        self._queued("held")
        if self.held:
            return False
        self.held = True
        self.set_pending(HELD, None, at)
        return True

    def release(self, at: datetime) -> bool:
        """Let a held job be scheduled again. False: it was not held."""
        self._queued("released")
        if not self.held:
            return False
        self.held = False
        self.set_pending(None, None, at)
        return True

    def set_priority(self, priority: int, at: datetime) -> bool:
        self._queued("re-prioritised")
        if priority == self.priority:
            return False
        self.priority = priority
        self._record("pending", None, f"priority set to {priority}")
        return True

    def set_pending(self, pending: Pending | None, estimated_start: datetime | None, at: datetime) -> bool:
        """The engine's answer changed. An event only when the reason's code changes (the message and
        the estimate move often; the code is what someone watching acts on)."""
        if (pending, estimated_start) == (self.pending, self.estimated_start):
            return False
        code_changed = (pending.code if pending else None) != (self.pending.code if self.pending else None)
        self.pending, self.estimated_start = pending, estimated_start
        if code_changed:
            self._record("pending", None, pending.message if pending else "released")
        return True

    def _changed(
        self,
        kind: str,
        new_status: JobStatus | None,
        at: datetime,
        reason: str | None,
        ended_attempt: EndedAttempt | None = None,
    ) -> None:
        previous = None if new_status is None else self.status
        if new_status is not None:
            self.status = new_status
        entry = StatusChange(self.status, at, reason, self.attempt)
        self.history.append(entry)
        self.new_history.append(entry)
        self._record(kind, previous, reason, ended_attempt)

    def _record(
        self,
        kind: str,
        previous: JobStatus | None,
        reason: str | None,
        ended_attempt: EndedAttempt | None = None,
        stops_at: datetime | None = None,
    ) -> None:
        snapshot = dataclasses.replace(self, history=[], new_history=[], events=[])
        self.events.append(JobChanged(kind, previous, reason, snapshot, ended_attempt, stops_at))


HELD = Pending("held", "the job is held; release it to let it be scheduled")
