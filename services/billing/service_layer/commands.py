"""What the entrypoints ask of the handlers, already out of wire types."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from ..domain.costs import FinishedJob


@dataclass(frozen=True)
class RecordJobCost:
    """Bill a job that reached a terminal state; ``event_id`` is the job event that said so."""

    event_id: UUID
    job: FinishedJob


@dataclass(frozen=True)
class GetJobCost:
    organization_id: UUID
    job_id: str  # as sent: a malformed id is simply not found


@dataclass(frozen=True)
class ListJobCosts:
    organization_id: UUID
    limit: int = 0  # 0 (proto's unset): the default page
    cursor: str | None = None
