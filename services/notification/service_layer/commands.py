"""What the entrypoints ask of the handlers, already out of wire types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..domain.model import SendResult


@dataclass(frozen=True)
class CreateWebhook:
    organization_id: UUID
    url: str
    events: tuple[str, ...] = ()
    description: str | None = None
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class ListWebhooks:
    organization_id: UUID
    bound_project: UUID | None = None  # the caller's key's project (Principal.project_id); None: unbound


@dataclass(frozen=True)
class DeleteWebhook:
    organization_id: UUID
    webhook_id: str  # as sent: a malformed id is simply not found
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class UpdateWebhook:
    """Merge semantics: a field left None is unchanged. ``events=()`` subscribes to every job
    event; ``description=""`` removes it; ``status`` is ``active`` (re-enable: its failures are
    forgotten) or ``disabled`` (by hand)."""

    organization_id: UUID
    webhook_id: str  # as sent: a malformed id is simply not found
    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None
    status: str | None = None
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class RotateWebhookSecret:
    organization_id: UUID
    webhook_id: str  # as sent: a malformed id is simply not found
    overlap_seconds: int | None = None  # how long the old secret still signs; None: 24 h
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class RedeliverDelivery:
    organization_id: UUID
    delivery_id: str  # as sent: a malformed id is simply not found
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class ListDeliveries:
    organization_id: UUID
    webhook_id: UUID | None = None
    job_id: UUID | None = None
    limit: int | None = None
    bound_project: UUID | None = None  # the caller's key's project; None: unbound


@dataclass(frozen=True)
class GetJobWebhookSecret:
    organization_id: UUID
    role: str
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class RotateJobWebhookSecret:
    organization_id: UUID
    role: str
    overlap_seconds: int | None = None  # how long the old secret still signs; None: 24 h
    bound_project: UUID | None = None  # the caller's key's project (refused when set); None: unbound


@dataclass(frozen=True)
class NotifyJobEvent:
    """One job event to fan out to the organization's webhooks and the job's own URL."""

    event_id: UUID
    event_type: str  # internal CloudEvents type, e.g. gpufleet.job.succeeded
    occurred_at: datetime
    organization_id: UUID
    job_id: UUID
    webhook_url: str | None
    job: Mapping[str, Any] = field(default_factory=dict)  # the snapshot as JSON values
    # The rest of the CloudEvent, for the organization's event log (GET /v1/events).
    source: str = ""
    subject: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)  # the whole JobEventV1 as JSON values
    project_id: UUID | None = None  # the job's project (None: none)


@dataclass(frozen=True)
class NotifyCostEvent:
    """One cost event: into the organization's event log, and to the webhooks subscribed to it."""

    event_id: UUID
    event_type: str  # gpufleet.cost.recorded
    occurred_at: datetime
    organization_id: UUID
    job_id: UUID
    source: str
    subject: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)  # CostRecordedV1 as JSON values
    project_id: UUID | None = None  # the job's project (None: none)


@dataclass(frozen=True)
class NotifyEvents:
    """A batch of one topic's events, in topic order, fanned out in one transaction."""

    events: tuple[NotifyJobEvent, ...] | tuple[NotifyCostEvent, ...]


# --- the event stream


@dataclass(frozen=True)
class OpenEventStream:
    """Where a stream starts and what it sends. ``after`` (a cursor) wins over ``from_start``;
    with neither, the stream starts at the organization's newest event (new events only)."""

    organization_id: UUID
    scopes: tuple[str, ...]  # the caller's key's, as Authenticate answered
    after: str | None = None
    from_start: bool = False
    job_id: UUID | None = None
    types: tuple[str, ...] = ()
    bound_project: UUID | None = None  # the caller's key's project: only its events; None: all


@dataclass(frozen=True)
class ReadEvents:
    organization_id: UUID
    after: int
    types: tuple[str, ...]
    job_id: UUID | None
    limit: int
    project_id: UUID | None = None  # only this project's events (a project-bound key's); None: all


@dataclass(frozen=True)
class PruneEventLog:
    """Drop what is older than ``max_age`` and, per organization, all but the newest ``keep``."""

    max_age: timedelta
    keep: int


# --- the delivery worker's bookkeeping


@dataclass(frozen=True)
class ClaimDueDeliveries:
    """Take up to ``limit`` due deliveries for one attempt each, holding them for ``lease``."""

    limit: int
    lease: timedelta


@dataclass(frozen=True)
class RecordDeliveryResult:
    delivery_id: UUID
    result: SendResult
    started_at: datetime


@dataclass(frozen=True)
class RecordDeliveryResults:
    """Several attempts' results, in the order they completed, recorded in one transaction."""

    results: tuple[RecordDeliveryResult, ...]


@dataclass(frozen=True)
class MeasurePending:
    """Read the backlog (deliveries due and unclaimed) and when the next one falls due."""
