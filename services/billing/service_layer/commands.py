"""What the entrypoints ask of the handlers, already out of wire types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..domain.costs import EndedAttempt
from ..domain.running import RunningAttempt


@dataclass(frozen=True)
class RecordAttemptCost:
    """Bill (or record and credit) an attempt of a job that ended; ``event_id`` is the job event that
    said so: a terminal event for the last attempt, a requeued event for one lost to infrastructure."""

    event_id: UUID
    attempt: EndedAttempt


@dataclass(frozen=True)
class GetJobCost:
    organization_id: UUID
    job_id: str  # as sent: a malformed id is simply not found
    bound_project: UUID | None = None  # the caller's key's project (Principal.project_id); None: unbound


@dataclass(frozen=True)
class ListJobCosts:
    organization_id: UUID
    limit: int = 0  # 0 (proto's unset): the default page
    cursor: str | None = None
    project_id: UUID | None = None  # only this project's costs; None: all
    bound_project: UUID | None = None  # the caller's key's project; None: unbound


@dataclass(frozen=True)
class TrackRunningAttempt:
    """An attempt holds GPUs now (a scheduled or started event said so): its cost so far counts."""

    attempt: RunningAttempt


@dataclass(frozen=True)
class SummarizeCosts:
    organization_id: UUID
    group_by: str  # as sent: validated by the domain
    start: datetime | None = None  # None: 30 days before ``end``
    end: datetime | None = None  # None: now
    include_running: bool = True
    project_id: UUID | None = None  # only this project's costs; None: all
    bound_project: UUID | None = None  # the caller's key's project; None: unbound


@dataclass(frozen=True)
class PruneEndedRunning:
    """Delete the running-attempt tombstones older than ``retention_hours`` (housekeeping)."""

    retention_hours: int


@dataclass(frozen=True)
class ApplyJobEvents:
    """A batch of the job topic's events that matter to billing, in topic order, in one transaction."""

    events: tuple[RecordAttemptCost | TrackRunningAttempt, ...]
