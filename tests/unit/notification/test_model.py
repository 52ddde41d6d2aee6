"""Delivery state and webhook health, with plain objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notification.domain.model import (
    DISABLE_AFTER_CONSECUTIVE_FAILURES,
    GONE_REASON,
    Delivery,
    DeliveryStatus,
    Outcome,
    SendResult,
    Webhook,
    WebhookStatus,
    may_read_job_webhook_secret,
)
from services.notification.domain.retry import RetryPolicy

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=5, max_attempts=3)
OK = SendResult(204, None, 12)
FAIL = SendResult(500, None, 30)
GONE = SendResult(410, "HTTP 410", 8)


def delivery() -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        webhook_id=uuid.uuid4(),
        url="http://x/",
        event_id=uuid.uuid4(),
        event_type="job.failed",
        job_id=uuid.uuid4(),
        payload=b"{}",
        next_attempt_at=T0,
    )


def webhook() -> Webhook:
    return Webhook(
        id=uuid.uuid4(), organization_id=uuid.uuid4(), url="http://x/", events=(), signing_secret="whsec_AAAA"
    )


def test_a_2xx_delivers() -> None:
    d = delivery()
    recorded = d.record_attempt(OK, T0, T0 + timedelta(seconds=1), POLICY, lambda: 1.0)
    attempt = recorded.attempt
    assert recorded.outcome is Outcome.DELIVERED
    assert (d.status, d.attempts, d.next_attempt_at, d.delivered_at) == (
        DeliveryStatus.DELIVERED,
        1,
        None,
        T0 + timedelta(seconds=1),
    )
    assert (attempt.attempt, attempt.response_status, attempt.error, attempt.at) == (1, 204, None, T0)


def test_failures_back_off_then_give_up_at_max_attempts() -> None:
    d = delivery()
    assert d.record_attempt(FAIL, T0, T0, POLICY, lambda: 1.0).outcome is Outcome.RETRYING
    assert (d.status, d.next_attempt_at, d.last_error) == (
        DeliveryStatus.PENDING,
        T0 + timedelta(seconds=5),
        "HTTP 500",
    )
    d.record_attempt(SendResult(None, "timed out after 10 s", 10000), T0, T0, POLICY, lambda: 1.0)
    assert d.next_attempt_at == T0 + timedelta(seconds=10)
    assert d.record_attempt(FAIL, T0, T0, POLICY, lambda: 1.0).outcome is Outcome.FAILED
    assert (d.status, d.attempts, d.next_attempt_at) == (DeliveryStatus.FAILED, 3, None)
    assert [a.attempt for a in d.attempt_log] == [1, 2, 3]
    assert d.attempt_log[1].error == "timed out after 10 s"


def test_a_permanent_failure_stops_at_once() -> None:
    d = delivery()
    recorded = d.record_attempt(
        SendResult(None, "refused: private", 0, permanent=True), T0, T0, POLICY, lambda: 0.0
    )
    assert recorded.outcome is Outcome.FAILED
    assert (d.status, d.last_error) == (DeliveryStatus.FAILED, "refused: private")


def test_410_gone_stops_retrying_that_message_at_once() -> None:
    d = delivery()
    assert d.record_attempt(GONE, T0, T0, POLICY, lambda: 0.0).outcome is Outcome.GONE
    assert (d.status, d.attempts, d.next_attempt_at, d.last_error) == (
        DeliveryStatus.FAILED,
        1,
        None,
        "HTTP 410",
    )


def test_a_late_attempt_is_logged_but_changes_nothing_else() -> None:
    d = delivery()
    d.record_attempt(OK, T0, T0, POLICY, lambda: 0.0)
    assert d.record_attempt(FAIL, T0, T0 + timedelta(minutes=1), POLICY, lambda: 0.0).outcome is Outcome.LATE
    assert (d.status, d.attempts, d.delivered_at, d.last_error) == (DeliveryStatus.DELIVERED, 2, T0, None)


def test_abandon_closes_only_pending_deliveries() -> None:
    d = delivery()
    assert d.abandon("webhook disabled")
    assert (d.status, d.next_attempt_at, d.last_error) == (DeliveryStatus.FAILED, None, "webhook disabled")
    done = delivery()
    done.record_attempt(OK, T0, T0, POLICY, lambda: 0.0)
    assert not done.abandon("webhook disabled")
    assert done.status is DeliveryStatus.DELIVERED


def test_webhook_is_disabled_after_ten_consecutive_failures_and_success_resets_the_count() -> None:
    w = webhook()
    for _ in range(DISABLE_AFTER_CONSECUTIVE_FAILURES - 1):
        assert not w.record_attempt(FAIL, Outcome.RETRYING, T0)
    assert w.record_attempt(OK, Outcome.DELIVERED, T0 + timedelta(seconds=1)) is False
    assert (w.consecutive_failures, w.last_used, w.is_active) == (0, T0 + timedelta(seconds=1), True)
    disabled = [
        w.record_attempt(FAIL, Outcome.RETRYING, T0) for _ in range(DISABLE_AFTER_CONSECUTIVE_FAILURES)
    ]
    assert disabled == [False] * 9 + [True]
    assert (w.status, w.is_active, w.disabled_at) == (WebhookStatus.DISABLED, False, T0)
    assert w.disabled_reason == "10 consecutive failed attempts"
    assert not w.record_attempt(FAIL, Outcome.RETRYING, T0)  # reported once
    assert w.disabled_reason == "10 consecutive failed attempts"


def test_410_gone_disables_the_webhook_at_once_with_the_reason() -> None:
    w = webhook()
    assert w.record_attempt(GONE, Outcome.GONE, T0) is True
    assert (w.status, w.disabled_at, w.disabled_reason, w.consecutive_failures) == (
        WebhookStatus.DISABLED,
        T0,
        GONE_REASON,
        1,
    )


def test_410_gone_disables_even_from_a_late_attempt() -> None:
    w = webhook()
    assert w.record_attempt(GONE, Outcome.LATE, T0) is True
    assert (w.is_active, w.disabled_reason, w.consecutive_failures) == (False, GONE_REASON, 0)


def test_late_failures_do_not_count_but_late_successes_reset() -> None:
    w = webhook()
    for _ in range(DISABLE_AFTER_CONSECUTIVE_FAILURES * 2):
        assert not w.record_attempt(FAIL, Outcome.LATE, T0)
    assert (w.consecutive_failures, w.is_active) == (0, True)
    w.record_attempt(FAIL, Outcome.RETRYING, T0)
    w.record_attempt(OK, Outcome.LATE, T0 + timedelta(seconds=2))
    assert (w.consecutive_failures, w.last_used) == (0, T0 + timedelta(seconds=2))


def test_error_rate_is_a_moving_average_over_every_answer_late_ones_included() -> None:
    w = webhook()
    w.record_attempt(FAIL, Outcome.RETRYING, T0)
    assert w.error_rate == pytest.approx(0.1)
    for _ in range(50):
        w.record_attempt(FAIL, Outcome.LATE, T0)
    assert 0.99 < w.error_rate <= 1.0
    w.record_attempt(OK, Outcome.DELIVERED, T0)
    assert w.error_rate < 0.95


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40))
def test_consecutive_failures_in_any_completion_order(completions: list[tuple[int, bool]]) -> None:
    """Attempts of four messages complete in any order (an attempt may complete after its message was
    delivered by another): the count is the non-late failures since the last success, and it is 0
    whenever every message ended delivered."""
    w = webhook()
    deliveries = [delivery() for _ in range(4)]
    policy = RetryPolicy(base_seconds=1, max_attempts=100)
    expected = 0
    for index, ok in completions:
        result = OK if ok else FAIL
        outcome = deliveries[index].record_attempt(result, T0, T0, policy, lambda: 0.0).outcome
        w.record_attempt(result, outcome, T0)
        expected = 0 if ok else expected + (outcome is not Outcome.LATE)
        assert w.consecutive_failures == expected
    if all(d.status is DeliveryStatus.DELIVERED for d in deliveries):
        assert w.consecutive_failures == 0


@pytest.mark.parametrize(
    ("role", "allowed"), [("owner", True), ("admin", True), ("member", False), ("viewer", False), ("", False)]
)
def test_only_owners_and_admins_read_the_job_webhook_secret(role: str, allowed: bool) -> None:
    assert may_read_job_webhook_secret(role) is allowed
