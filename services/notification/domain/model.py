"""Webhooks, their deliveries and the attempts to make them, as plain objects with their rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from .retry import RetryPolicy

# Seed 002's rule: a target that failed this many times in a row is switched off.
DISABLE_AFTER_CONSECUTIVE_FAILURES = 10
# Weight of the newest attempt in the webhook's error rate (an exponential moving average).
ERROR_RATE_WEIGHT = 0.1
MAX_ERROR_LENGTH = 1000


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


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

    def failure_reason(self) -> str:
        if self.error:
            return self.error[:MAX_ERROR_LENGTH]
        return f"HTTP {self.response_status}"


@dataclass
class Webhook:
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
    created_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status is WebhookStatus.ACTIVE

    def record_attempt(self, ok: bool, at: datetime) -> bool:
        """Account one attempt against this target; True when it has just been disabled."""
        self.error_rate = (1 - ERROR_RATE_WEIGHT) * self.error_rate + ERROR_RATE_WEIGHT * (0.0 if ok else 1.0)
        if ok:
            self.consecutive_failures = 0
            self.last_used = at
            return False
        self.consecutive_failures += 1
        if self.is_active and self.consecutive_failures >= DISABLE_AFTER_CONSECUTIVE_FAILURES:
            self.status = WebhookStatus.DISABLED
            self.disabled_at = at
            return True
        return False


@dataclass(frozen=True)
class DeliveryAttempt:
    delivery_id: UUID
    organization_id: UUID
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


@dataclass
class Delivery:
    """One event for one URL. ``id`` is the ``webhook-id`` header: the same on every retry."""

    id: UUID
    organization_id: UUID
    webhook_id: UUID | None  # None: the job's own webhook_url
    url: str
    event_id: UUID
    event_type: str  # public name, e.g. job.succeeded
    job_id: UUID | None
    payload: bytes
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    attempt_log: list[DeliveryAttempt] = field(default_factory=list)

    def record_attempt(
        self,
        result: SendResult,
        started_at: datetime,
        now: datetime,
        policy: RetryPolicy,
        rand: Callable[[], float],
    ) -> DeliveryAttempt:
        """Log one attempt and decide what comes next: done, another try later, or give up.

        An attempt that finishes after the delivery left ``pending`` (its lease ran out and another
        worker finished it) is still logged, but changes nothing else."""
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
            return attempt
        if result.ok:
            self.status, self.delivered_at, self.next_attempt_at, self.last_error = (
                DeliveryStatus.DELIVERED,
                now,
                None,
                None,
            )
        elif result.permanent or policy.exhausted(self.attempts):
            self.status, self.next_attempt_at, self.last_error = (DeliveryStatus.FAILED, None, attempt.error)
        else:
            self.next_attempt_at = now + policy.delay(self.attempts, rand)
            self.last_error = attempt.error
        return attempt

    def abandon(self, reason: str) -> None:
        """Stop trying without another attempt (its webhook was switched off)."""
        if self.status is DeliveryStatus.PENDING:
            self.status, self.next_attempt_at, self.last_error = DeliveryStatus.FAILED, None, reason


def may_read_job_webhook_secret(role: str) -> bool:
    """The secret that signs every job's own webhook is an organization-wide credential."""
    return role in ("owner", "admin")
