"""Commands: what the entrypoints ask of the handlers, already out of wire types (ids still as
strings where a malformed one must be reported the way the handler decides)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..domain.access import UNRESTRICTED, Access
from ..domain.inventory import InventoryGpu


@dataclass(frozen=True)
class JobRequest:
    """What a submit asks for: one job's request fields (a batch's jobs, and :class:`SubmitJob` with
    who asks added)."""

    command: str
    gpu_count: int
    gpu_memory_mb: int = 0
    gpu_type: str | None = None
    priority: int | None = None  # None: the default
    webhook_url: str | None = None
    name: str | None = None
    nodes: int | None = None  # None: 1
    cpu_cores: int = 0
    ram_mb: int = 0
    time_limit_seconds: int | None = None  # None or 0: the platform's default
    hold: bool = False
    no_requeue: bool = False
    project_id: str = ""  # "": none (a project-bound key's own)
    image: str | None = None
    # SubmitJob: the job's own key. A batch's jobs have none (the batch has one); one given is refused.
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubmitJob(JobRequest):
    """A single submit: the job's request fields and who asks."""

    organization_id: UUID
    user_id: UUID | None
    authorization: str | None = None  # forwarded to fleet's catalog
    access: Access = UNRESTRICTED  # the caller's project standing (docs/projects.md)
    api_key: str | None = None  # the caller's key, for identity's word on the project


@dataclass(frozen=True)
class SubmitJobs:
    """Many jobs at once, all or nothing (JobService/SubmitJobs)."""

    organization_id: UUID
    user_id: UUID | None
    jobs: tuple[JobRequest, ...]
    idempotency_key: str | None = None  # the whole batch's; job i is stored under "<key>\x1f<i>"
    authorization: str | None = None  # forwarded to fleet's catalog
    access: Access = UNRESTRICTED
    api_key: str | None = None


@dataclass(frozen=True)
class GetJob:
    organization_id: UUID
    job_id: str
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class ListJobs:
    organization_id: UUID
    status: str | None = None
    limit: int | None = None
    cursor: str | None = None
    project_id: str = ""  # "": every project's jobs (a bound key: its own)
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class CancelJob:
    organization_id: UUID
    job_id: str
    reason: str | None = None
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class HoldJob:
    organization_id: UUID
    job_id: str
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class ReleaseJob:
    organization_id: UUID
    job_id: str
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class UpdateJobPriority:
    organization_id: UUID
    job_id: str
    priority: int
    access: Access = UNRESTRICTED


@dataclass(frozen=True)
class GetAssignments:
    node_id: str


@dataclass(frozen=True)
class ReportJobStarted:
    node_id: str
    job_id: str
    started_at: datetime | None = None
    attempt: int = 0  # 0: the agent did not say (older agents); otherwise the attempt it ran


@dataclass(frozen=True)
class ReportJobFinished:
    node_id: str
    job_id: str
    exit_code: int | None = None
    cancelled: bool = False
    error_message: str | None = None
    output_tail: str | None = None
    finished_at: datetime | None = None
    timed_out: bool = False  # the agent ended the job at its time limit
    attempt: int = 0  # 0: the agent did not say (older agents); otherwise the attempt it ran


@dataclass(frozen=True)
class ReportJobs:
    """An agent's batch of reports, applied in order in one transaction."""

    reports: tuple[ReportJobStarted | ReportJobFinished, ...]


@dataclass(frozen=True)
class ApplyGpuChange:
    event_id: UUID
    gpu: InventoryGpu
