"""The ports the handlers depend on. adapters/repository.py implements the unit of work over
PostgreSQL, adapters/http_sender.py the sender over HTTP, adapters/signing.py the signer over the
standardwebhooks library and adapters/metrics.py the metrics over Prometheus; unit tests use fakes.

One unit of work = one transaction: deliveries created for an event commit with the consumer's claim
of that event; an attempt, the delivery's new state and its webhook's health commit together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from shared.contracts.audit import AuditRecordedV1
from shared.events import Envelope

from ..domain.event_log import LoggedEvent, NewEvent
from ..domain.model import Delivery, DeliveryAttempt, SendResult, Webhook


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what it takes to send it."""

    delivery: Delivery
    secret: str | None  # the webhook's signing secret, or the organization's job webhook secret
    webhook_active: bool  # False when its webhook was disabled meanwhile
    disabled_reason: str | None = None  # why, when it was
    # The webhook's rotated-out secret while its overlap lasts: it signs too (two signatures).
    previous_secret: str | None = None


@dataclass(frozen=True)
class PendingSummary:
    due: int  # pending deliveries due now that no worker holds
    next_due_in: float | None  # seconds until the next pending one is due (<= 0: now); None: none


@dataclass(frozen=True)
class EventPage:
    """Events after a position, oldest first, and where the next read starts: the last event's number,
    or the organization's head when fewer than asked were found (every number up to the head is
    committed, so nothing between can still appear)."""

    events: list[LoggedEvent]
    position: int


class NotificationUnitOfWork(Protocol):
    async def record_audit(self, envelope: Envelope[AuditRecordedV1]) -> None:
        """Add an audit record (service_layer/audit.py) to the outbox in this unit's transaction."""

    async def now(self) -> datetime:
        """The clock of record (the database's, so every replica agrees)."""

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        """False when ``consumer`` has processed ``event_id`` before."""

    async def claim_many(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        """The subset of ``event_ids`` that ``consumer`` had not processed before (now claimed)."""

    async def add_webhook(self, webhook: Webhook) -> Webhook:
        """Insert; returns it with the database's ``created_at``."""

    async def webhooks(self) -> list[Webhook]:
        """Every webhook the unit's scope may see, oldest first."""

    async def active_webhooks(self, organization_id: UUID) -> list[Webhook]: ...

    async def active_webhooks_of(self, organization_ids: Sequence[UUID]) -> dict[UUID, list[Webhook]]:
        """:meth:`active_webhooks` of several organizations in one read (an organization without
        any: absent)."""

    async def webhook(self, webhook_id: UUID, *, for_update: bool = False) -> Webhook | None: ...

    async def save_webhook(self, webhook: Webhook) -> None: ...

    async def update_webhook(self, webhook: Webhook) -> None:
        """Store its settings (url, events, description) and its status and health."""

    async def repoint_pending_deliveries(self, webhook_id: UUID, url: str) -> None:
        """The webhook's pending deliveries go to ``url`` from their next attempt (one whose event
        already has a delivery to ``url`` keeps its old one: one delivery per event and URL)."""

    async def save_webhook_secret(self, webhook: Webhook) -> None:
        """Store its signing secret and the previous one with its expiry."""

    async def delete_webhook(self, webhook_id: UUID) -> bool:
        """False when no such webhook is visible (row-level security hides other organizations')."""

    async def job_webhook_secret(self, organization_id: UUID, candidate: str) -> str:
        """The organization's job webhook secret; ``candidate`` becomes it when there is none yet."""

    async def rotate_job_webhook_secret(
        self, organization_id: UUID, secret: str, overlap: timedelta
    ) -> datetime | None:
        """``secret`` becomes the organization's job webhook secret; the one it replaces (if any)
        keeps signing for ``overlap`` (0: not at all). Returns until when it does (None: it does not)."""

    async def ensure_job_webhook_secrets(self, candidates: Mapping[UUID, str]) -> None:
        """Every organization of ``candidates`` gets its candidate as job webhook secret unless it
        has one already (the batch form of :meth:`job_webhook_secret`, without the read)."""

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        """Insert, skipping any (event, url) pair that exists; returns how many were new. A delivery
        without ``next_attempt_at`` is due at the transaction's time."""

    async def deliveries(
        self, webhook_id: UUID | None, job_id: UUID | None, limit: int, *, project: UUID | None = None
    ) -> list[Delivery]:
        """Newest first, with their attempt logs; with ``project`` (a project-bound key's), only the
        deliveries of that project's jobs to their own webhook_url."""

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Pending deliveries due now, oldest due first, skipping rows other workers hold; their
        ``next_attempt_at`` moves ``lease`` ahead so that a worker that dies mid-send is retried."""

    async def delivery(self, delivery_id: UUID, *, for_update: bool = False) -> Delivery | None: ...

    async def save_delivery(self, delivery: Delivery, attempts: Sequence[DeliveryAttempt] = ()) -> None: ...

    async def restart_delivery(self, delivery: Delivery, url: str | None) -> Delivery:
        """Store a redelivered delivery (pending, due at the transaction's time, its schedule
        restarted), moved to ``url`` when given unless its event already has a delivery there;
        returns it as stored, with its attempt log."""

    async def delivery_webhooks(self, delivery_ids: Sequence[UUID]) -> dict[UUID, UUID | None]:
        """Each existing delivery's webhook (None: a job's own URL), read without locking."""

    async def webhooks_for_update(self, webhook_ids: Sequence[UUID]) -> dict[UUID, Webhook]:
        """The webhooks, locked in the order of their ids (what every batch locks them in)."""

    async def deliveries_for_update(self, delivery_ids: Sequence[UUID]) -> dict[UUID, Delivery]:
        """The deliveries that exist, locked in the order of their ids; lock their webhooks first."""

    async def save_deliveries(
        self, deliveries: Sequence[Delivery], attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        """:meth:`save_delivery` for several distinct deliveries and their new attempts at once."""

    async def save_webhooks(self, webhooks: Sequence[Webhook]) -> None:
        """:meth:`save_webhook` for several distinct webhooks at once."""

    async def pending_summary(self) -> PendingSummary:
        """How many pending deliveries are due now, and when the next one is."""

    # --- the event log (one numbering per organization; see migrations/notification/003)

    async def append_event(self, event: NewEvent) -> int | None:
        """Store it under its organization's next number; None when an event with its id is stored
        already. Takes the organization's log lock until commit: call it last in the unit."""

    async def append_events(self, events: Sequence[NewEvent]) -> set[UUID]:
        """:meth:`append_event` for many events at once, each organization's in the given order, the
        organizations' log locks taken in the order of their ids' bytes; returns the organizations
        that got at least one new event. Call it last in the unit."""

    async def event_log_head(self, organization_id: UUID) -> int:
        """The newest number handed out to ``organization_id`` (0: none yet)."""

    async def events_after(
        self,
        organization_id: UUID,
        after: int,
        types: Sequence[str],
        job_id: UUID | None,
        limit: int,
        *,
        project: UUID | None = None,
    ) -> EventPage:
        """With ``project``, only that project's events: the others are skipped (the page's position
        still moves past them, so a cursor never re-reads them)."""

    async def prune_event_log(self, max_age: timedelta, keep: int) -> int:
        """Delete events stored longer than ``max_age`` ago and, per organization, all but the newest
        ``keep``; returns how many went."""


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[NotificationUnitOfWork]: ...


class Sender(Protocol):
    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> SendResult:
        """POST ``body`` once; never raises for the target's failures (they are the result)."""


class Signer(Protocol):
    def headers(
        self, secret: str, message_id: str, at: datetime, body: bytes, *, also: Sequence[str] = ()
    ) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt at ``at``, signed with ``secret`` and every
        secret of ``also`` (space-separated signatures); raises ``InvalidSecret``."""


class DeliveryMetrics(Protocol):
    def outcome(self, outcome: str) -> None:
        """One recorded attempt's ``Outcome``, or ``disabled`` for a delivery closed unsent."""

    def attempt_seconds(self, seconds: float) -> None: ...

    def due(self, count: int) -> None:
        """The backlog: deliveries due now and not yet claimed."""


class NoMetrics:
    def outcome(self, outcome: str) -> None:
        pass

    def attempt_seconds(self, seconds: float) -> None:
        pass

    def due(self, count: int) -> None:
        pass
