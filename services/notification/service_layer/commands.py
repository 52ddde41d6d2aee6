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


@dataclass(frozen=True)
class ListWebhooks:
    organization_id: UUID


@dataclass(frozen=True)
class DeleteWebhook:
    organization_id: UUID
    webhook_id: str  # as sent: a malformed id is simply not found


@dataclass(frozen=True)
class ListDeliveries:
    organization_id: UUID
    webhook_id: UUID | None = None
    job_id: UUID | None = None
    limit: int | None = None


@dataclass(frozen=True)
class GetJobWebhookSecret:
    organization_id: UUID
    role: str


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
class MeasurePending:
    """Read the backlog (deliveries due and unclaimed) and when the next one falls due."""
