"""When a failed delivery is tried again: exponential backoff with jitter, capped, bounded in count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

MAX_DELAY_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    factor: float = 2.0
    cap_seconds: float = MAX_DELAY_SECONDS
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.factor < 1 or self.cap_seconds < self.base_seconds:
            raise ValueError("retry policy needs base > 0, factor >= 1 and cap >= base")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def nominal_delay(self, failed_attempts: int) -> float:
        """Delay after the ``failed_attempts``-th failure before jitter: base * factor^(n-1), capped."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts counts from 1")
        # Computed in a way that cannot overflow for large n.
        delay = self.base_seconds
        for _ in range(failed_attempts - 1):
            delay *= self.factor
            if delay >= self.cap_seconds:
                return self.cap_seconds
        return min(delay, self.cap_seconds)

    def delay(self, failed_attempts: int, rand: Callable[[], float]) -> timedelta:
        """ "Equal jitter": uniformly within [nominal/2, nominal]. Spreads the retries of many
        deliveries that failed together (a receiver outage) without ever retrying at once."""
        nominal = self.nominal_delay(failed_attempts)
        r = min(max(rand(), 0.0), 1.0)
        return timedelta(seconds=nominal / 2 + r * nominal / 2)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
