"""Public job topic contract (``gpufleet.jobs.v1``).

Every event carries a full snapshot of the job after the change, so a subscriber never needs to
join events or call back: the last event of a job is its whole story. Amounts are decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

JOB_SUBMITTED = "gpufleet.job.submitted"
JOB_SCHEDULED = "gpufleet.job.scheduled"
JOB_STARTED = "gpufleet.job.started"
JOB_SUCCEEDED = "gpufleet.job.succeeded"
JOB_FAILED = "gpufleet.job.failed"
JOB_CANCELLED = "gpufleet.job.cancelled"
JOB_TIMED_OUT = "gpufleet.job.timed_out"
# A running job whose node or agent was lost went back to the queue as a new attempt.
JOB_REQUEUED = "gpufleet.job.requeued"
# A queued job's pending reason changed (or it was held, released, re-prioritised).
JOB_PENDING = "gpufleet.job.pending"
# A running job nears its time limit: sent once per attempt at shared.time_limit.warning_after(limit)
# after the attempt's start (late, once, when the scheduler could not send it then). Not a status change
# (previous_status and status are both "running"); ``stops_at`` says when the job is stopped.
JOB_TIME_LIMIT_WARNING = "gpufleet.job.time_limit_warning"

TERMINAL_EVENTS = (JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, JOB_TIMED_OUT)

JobStatus = Literal["queued", "scheduled", "running", "succeeded", "failed", "cancelled", "timed_out"]


class GpuAllocationV1(BaseModel):
    """One GPU held by a job, with the hourly price fixed when it was allocated."""

    gpu_id: UUID
    gpu_index: int
    gpu_type: str
    cost_per_hour: Decimal = Field(description="USD per GPU-hour at allocation time")


class PendingReasonV1(BaseModel):
    """Why a queued job waits; never names another organization or how much it runs."""

    code: str = Field(description="quota_exhausted, fair_share, no_capacity, user_cap, held, never_fits, ...")
    message: str


class JobPlacementV1(BaseModel):
    """One node of a placed job; a gang has several, rank 0 is the master."""

    node_id: UUID
    rank: int
    gpu_ids: list[UUID] = Field(default_factory=list)


class JobSnapshotV1(BaseModel):
    job_id: UUID
    organization_id: UUID
    user_id: UUID | None = None
    name: str | None = None
    status: JobStatus
    command: str
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str | None = None
    priority: int
    webhook_url: str | None = None
    node_id: UUID | None = None
    allocation: list[GpuAllocationV1] = Field(default_factory=list)
    exit_code: int | None = None
    output_tail: str | None = None
    error_message: str | None = None
    created_at: datetime
    scheduled_at: datetime | None = Field(default=None, description="GPUs allocated (held from here)")
    started_at: datetime | None = None
    finished_at: datetime | None = Field(default=None, description="GPUs released (held until here)")
    # Added in the scheduler engine's contract (all optional: older events decode unchanged).
    nodes: int = Field(default=1, description="a gang across this many nodes, gpu_count GPUs on each")
    cpu_cores: int = Field(default=0, description="per node; 0 = no request")
    ram_mb: int = Field(default=0, description="per node; 0 = no request")
    time_limit_seconds: int | None = None
    held: bool = False
    no_requeue: bool = False
    attempt: int = Field(default=1, description="1 for the first run; +1 per requeue after a lost node/agent")
    pending_reason: PendingReasonV1 | None = Field(default=None, description="set while queued")
    placements: list[JobPlacementV1] = Field(default_factory=list)
    # Added with projects (optional: older events decode unchanged).
    project_id: UUID | None = Field(default=None, description="the job's project; null: none")
    image: str | None = Field(
        default=None, description="container image the job runs in; null: the host sandbox"
    )


class EndedAttemptV1(BaseModel):
    """An attempt that ended without an end of its own (``gpufleet.job.requeued``): what it held and
    for how long. The event's snapshot already describes the next attempt (queued, nothing allocated),
    so billing records and credits the lost GPU time from this."""

    attempt: int = Field(description="the attempt that ended (the snapshot's attempt is the next one)")
    allocation: list[GpuAllocationV1] = Field(default_factory=list, description="every GPU it held")
    scheduled_at: datetime | None = Field(default=None, description="GPUs allocated (held from here)")
    released_at: datetime | None = Field(default=None, description="GPUs released (held until here)")


class JobEventV1(BaseModel):
    """Payload of every event on the job topic; ``job.status`` is the state the event announces."""

    job: JobSnapshotV1
    previous_status: JobStatus | None = None
    reason: str | None = None
    ended_attempt: EndedAttemptV1 | None = Field(
        default=None, description="set on gpufleet.job.requeued: the attempt lost to infrastructure"
    )
    # Added with the time-limit warning (optional: older events decode unchanged).
    stops_at: datetime | None = Field(
        default=None,
        description="set on gpufleet.job.time_limit_warning: when the job is stopped at its time limit "
        "(started_at + time_limit_seconds)",
    )


EVENT_TYPES: dict[str, type[BaseModel]] = {
    t: JobEventV1
    for t in (
        JOB_SUBMITTED,
        JOB_SCHEDULED,
        JOB_STARTED,
        JOB_SUCCEEDED,
        JOB_FAILED,
        JOB_CANCELLED,
        JOB_TIMED_OUT,
        JOB_REQUEUED,
        JOB_PENDING,
        JOB_TIME_LIMIT_WARNING,
    )
}
