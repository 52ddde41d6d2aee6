"""Commands: what the entrypoints ask of the handlers, already out of wire types (ids still as
strings where a malformed one must be reported the way the handler decides)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..domain.inventory import InventoryGpu


@dataclass(frozen=True)
class SubmitJob:
    organization_id: UUID
    user_id: UUID | None
    command: str
    gpu_count: int
    gpu_memory_mb: int = 0
    gpu_type: str | None = None
    priority: int | None = None  # None: the default
    webhook_url: str | None = None
    name: str | None = None
    idempotency_key: str | None = None
    authorization: str | None = None  # forwarded to fleet's catalog


@dataclass(frozen=True)
class GetJob:
    organization_id: UUID
    job_id: str


@dataclass(frozen=True)
class ListJobs:
    organization_id: UUID
    status: str | None = None
    limit: int | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class CancelJob:
    organization_id: UUID
    job_id: str
    reason: str | None = None


@dataclass(frozen=True)
class GetAssignments:
    node_id: str


@dataclass(frozen=True)
class ReportJobStarted:
    node_id: str
    job_id: str
    started_at: datetime | None = None


@dataclass(frozen=True)
class ReportJobFinished:
    node_id: str
    job_id: str
    exit_code: int | None = None
    cancelled: bool = False
    error_message: str | None = None
    output_tail: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ApplyGpuChange:
    event_id: UUID
    gpu: InventoryGpu
