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

TERMINAL_EVENTS = (JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED)

JobStatus = Literal["queued", "scheduled", "running", "succeeded", "failed", "cancelled"]


class GpuAllocationV1(BaseModel):
    """One GPU held by a job, with the hourly price fixed when it was allocated."""

    gpu_id: UUID
    gpu_index: int
    gpu_type: str
    cost_per_hour: Decimal = Field(description="USD per GPU-hour at allocation time")


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


class JobEventV1(BaseModel):
    """Payload of every event on the job topic; ``job.status`` is the state the event announces."""

    job: JobSnapshotV1
    previous_status: JobStatus | None = None
    reason: str | None = None


EVENT_TYPES: dict[str, type[BaseModel]] = {
    t: JobEventV1
    for t in (JOB_SUBMITTED, JOB_SCHEDULED, JOB_STARTED, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED)
}
