"""The retry schedule: exponential from the base, capped at an hour, jittered within [d/2, d]."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.notification.domain.retry import RetryPolicy


def test_nominal_schedule_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(base_seconds=5)
    assert [policy.nominal_delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 320, 640]
    assert policy.nominal_delay(11) == 3600  # 5 * 2**10 = 5120 -> capped
    assert policy.nominal_delay(10_000) == 3600  # no overflow for absurd counts


def test_jitter_stays_between_half_and_the_full_delay() -> None:
    policy = RetryPolicy(base_seconds=5)
    assert policy.delay(3, lambda: 0.0) == timedelta(seconds=10)
    assert policy.delay(3, lambda: 1.0) == timedelta(seconds=20)
    assert policy.delay(3, lambda: 0.5) == timedelta(seconds=15)
    assert policy.delay(20, lambda: 1.0) == timedelta(hours=1)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=8)
    assert not policy.exhausted(7)
    assert policy.exhausted(8)


@pytest.mark.parametrize(
    "kwargs",
    [{"base_seconds": 0}, {"factor": 0.5}, {"max_attempts": 0}, {"base_seconds": 10, "cap_seconds": 5}],
)
def test_nonsense_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
