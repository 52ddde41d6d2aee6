"""Webhooks, their deliveries and the attempts to make them, as plain objects with their rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from .retry import RetryPolicy

# Seed 002's rule: a target that failed this many times in a row is switched off.
DISABLE_AFTER_CONSECUTIVE_FAILURES = 10
# Weight of the newest attempt in the webhook's error rate (an exponential moving average).
ERROR_RATE_WEIGHT = 0.1
MAX_ERROR_LENGTH = 1000
# A rotated-out signing secret keeps signing (beside the new one) for this long unless asked otherwise.
DEFAULT_SECRET_OVERLAP = timedelta(hours=24)
MAX_SECRET_OVERLAP = timedelta(days=7)
DISABLED_BY_HAND = "disabled by a user"


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Outcome(StrEnum):
    """What one recorded attempt did to its delivery."""

    DELIVERED = "delivered"  # 2xx: done
    RETRYING = "retrying"  # failed; tried again later
    FAILED = "failed"  # failed; given up (attempts exhausted, or retrying cannot help)
    GONE = "gone"  # 410 Gone: the receiver asked us to stop; given up at once
    LATE = "late"  # the delivery had already been settled by another attempt: logged, nothing else


HTTP_GONE = 410
GONE_REASON = "the endpoint answered 410 Gone"


@dataclass(frozen=True)
class SendResult:
    """What one HTTP attempt gave. ``permanent`` marks a failure that retrying cannot fix."""

    response_status: int | None
    error: str | None
    duration_ms: int
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    @property
    def gone(self) -> bool:
        """410 Gone: as with Svix, the receiver's way to unsubscribe."""
        return self.response_status == HTTP_GONE

    def failure_reason(self) -> str:
        if self.error:
            return self.error[:MAX_ERROR_LENGTH]
        return f"HTTP {self.response_status}"


@dataclass
class Webhook:
    """An organization's endpoint and its health.

    ``consecutive_failures`` is the number of failed attempts since this endpoint's last successful
    one, taken in the order attempts complete (are recorded), counting only attempts of messages that
    were still pending when the attempt was recorded. A late attempt (one whose delivery another
    attempt had already delivered or given up) does not count: its message needs nothing more, so it
    says nothing about whether the endpoint is still worth sending to. Any 2xx, late or not, resets
    the count (the endpoint demonstrably answers). Hence an endpoint whose every message was finally
    delivered shows 0. ``error_rate`` is different: a moving average over every answer, late ones
    included, describing how the endpoint behaves rather than what is owed to it.
    """

    id: UUID
    organization_id: UUID
    url: str
    events: tuple[str, ...]
    signing_secret: str
    description: str | None = None
    status: WebhookStatus = WebhookStatus.ACTIVE
    error_rate: float = 0.0
    consecutive_failures: int = 0
    last_used: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_at: datetime | None = None
    # The secret the latest rotation replaced, and until when it still signs (both None: none).
    previous_signing_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status is WebhookStatus.ACTIVE

    def previous_secret(self, now: datetime) -> str | None:
        """The rotated-out secret while its overlap lasts (it signs beside the current one)."""
        if self.previous_signing_secret is None or self.previous_secret_expires_at is None:
            return None
        return self.previous_signing_secret if now < self.previous_secret_expires_at else None

    def rotate_secret(self, secret: str, overlap: timedelta, now: datetime) -> None:
        """``secret`` signs from now on; the current one keeps signing beside it for ``overlap``
        (0: not at all). Only one previous secret is kept: a rotation during an overlap ends it."""
        if overlap > timedelta(0):
            self.previous_signing_secret, self.previous_secret_expires_at = self.signing_secret, now + overlap
        else:
            self.previous_signing_secret, self.previous_secret_expires_at = None, None
        self.signing_secret = secret

    def set_status(self, status: WebhookStatus, at: datetime) -> bool:
        """Switch by hand; True when the status changed. Re-enabling forgets the endpoint's failures
        (the count that disabled it, the error rate and the reason): it starts over as a new one."""
        if status is self.status:
            return False
        if status is WebhookStatus.DISABLED:
            return self.disable(DISABLED_BY_HAND, at)
        self.status, self.disabled_at, self.disabled_reason = WebhookStatus.ACTIVE, None, None
        self.consecutive_failures, self.error_rate = 0, 0.0
        return True

    def record_attempt(self, result: SendResult, outcome: Outcome, at: datetime) -> bool:
        """Account one attempt (``outcome`` is what it did to its delivery) against this endpoint;
        True when the endpoint has just been disabled.

        410 Gone disables at once, late or not: it is the receiver's explicit request to stop, not a
        failure to be counted."""
        self.error_rate = (1 - ERROR_RATE_WEIGHT) * self.error_rate + ERROR_RATE_WEIGHT * (
            0.0 if result.ok else 1.0
        )
        if result.ok:
            self.consecutive_failures = 0
            self.last_used = at
            return False
        if outcome is not Outcome.LATE:
            self.consecutive_failures += 1
        if result.gone:
            return self.disable(GONE_REASON, at)
        if self.consecutive_failures >= DISABLE_AFTER_CONSECUTIVE_FAILURES:
            return self.disable(f"{self.consecutive_failures} consecutive failed attempts", at)
        return False

    def disable(self, reason: str, at: datetime) -> bool:
        """Switch the endpoint off, keeping the first reason; True when it was active."""
        if not self.is_active:
            return False
        self.status, self.disabled_at, self.disabled_reason = (
            WebhookStatus.DISABLED,
            at,
            reason[:MAX_ERROR_LENGTH],
        )
        return True


class AlreadyPending(Exception):
    """A redelivery asked for while the delivery is still being tried."""


@dataclass(frozen=True)
class DeliveryAttempt:
    delivery_id: UUID
    organization_id: UUID
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class RecordedAttempt:
    attempt: DeliveryAttempt
    outcome: Outcome


@dataclass
class Delivery:
    """One event for one URL. ``event_id`` (the CloudEvent id) is the ``webhook-id`` header: the same
    on every retry, and the ``id`` in the body."""

    id: UUID
    organization_id: UUID
    webhook_id: UUID | None  # None: the job's own webhook_url
    url: str
    event_id: UUID
    event_type: str  # public name, e.g. job.succeeded
    job_id: UUID | None
    payload: bytes
    status: DeliveryStatus = DeliveryStatus.PENDING
    project_id: UUID | None = None  # the job's project (None: none)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    attempt_log: list[DeliveryAttempt] = field(default_factory=list)
    # Attempts made before the latest redelivery: the retry schedule counts only those after it.
    schedule_start: int = 0

    @property
    def scheduled_attempts(self) -> int:
        """Attempts of the current schedule (since the latest redelivery, else since creation)."""
        return self.attempts - self.schedule_start

    def redeliver(self, now: datetime) -> None:
        """Send again from now, as a fresh schedule, however it ended (receivers ask for replays of
        delivered messages too): the same event id, so the receiver's de-duplication still holds.
        Raises :class:`AlreadyPending` while a schedule is under way (one redelivery at a time)."""
        if self.status is DeliveryStatus.PENDING:
            raise AlreadyPending("the delivery is still pending: wait until it is delivered or failed")
        self.status, self.next_attempt_at, self.delivered_at = DeliveryStatus.PENDING, now, None
        self.schedule_start = self.attempts

    def record_attempt(
        self,
        result: SendResult,
        started_at: datetime,
        now: datetime,
        policy: RetryPolicy,
        rand: Callable[[], float],
    ) -> RecordedAttempt:
        """Log one attempt and decide what comes next: done, another try later, or give up.

        An attempt that finishes after the delivery left ``pending`` (its lease ran out and another
        attempt settled it) is still logged, but is :attr:`Outcome.LATE` and changes nothing else."""
        self.attempts += 1
        attempt = DeliveryAttempt(
            delivery_id=self.id,
            organization_id=self.organization_id,
            attempt=self.attempts,
            at=started_at,
            response_status=result.response_status,
            error=None if result.ok else result.failure_reason(),
            duration_ms=max(result.duration_ms, 0),
        )
        self.attempt_log.append(attempt)
        if self.status is not DeliveryStatus.PENDING:
            return RecordedAttempt(attempt, Outcome.LATE)
        if result.ok:
            self.status, self.delivered_at, self.next_attempt_at, self.last_error = (
                DeliveryStatus.DELIVERED,
                now,
                None,
                None,
            )
            return RecordedAttempt(attempt, Outcome.DELIVERED)
        self.last_error = attempt.error
        if result.gone:
            self.status, self.next_attempt_at = DeliveryStatus.FAILED, None
            return RecordedAttempt(attempt, Outcome.GONE)
        if result.permanent or policy.exhausted(self.scheduled_attempts):
            self.status, self.next_attempt_at = DeliveryStatus.FAILED, None
            return RecordedAttempt(attempt, Outcome.FAILED)
        self.next_attempt_at = now + policy.delay(self.scheduled_attempts, rand)
        return RecordedAttempt(attempt, Outcome.RETRYING)

    def abandon(self, reason: str) -> bool:
        """Stop trying without another attempt (its webhook was switched off); True when it was
        pending."""
        if self.status is not DeliveryStatus.PENDING:
            return False
        self.status, self.next_attempt_at, self.last_error = (
            DeliveryStatus.FAILED,
            None,
            reason[:MAX_ERROR_LENGTH],
        )
        return True


def abandon_reason(disabled_reason: str | None) -> str:
    """What a delivery closed unsent because its webhook is off says about it."""
    return f"webhook disabled: {disabled_reason}" if disabled_reason else "webhook disabled"


def secret_overlap(seconds: int | None) -> timedelta:
    """How long a rotated-out secret keeps signing: ``seconds`` (0 to 7 days), None: the default.
    Raises ValueError outside the bounds."""
    if seconds is None:
        return DEFAULT_SECRET_OVERLAP
    if not 0 <= seconds <= MAX_SECRET_OVERLAP.total_seconds():
        raise ValueError(f"overlap_seconds must be between 0 and {int(MAX_SECRET_OVERLAP.total_seconds())}")
    return timedelta(seconds=seconds)


def may_read_job_webhook_secret(role: str) -> bool:
    """The secret that signs every job's own webhook is an organization-wide credential."""
    return role in ("owner", "admin")
