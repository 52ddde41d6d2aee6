"""What the operator sets for scheduling: the engine's policy as configured (the process stores it
once and then runs under the stored one: service_layer/policy.py), time limits, attempts and the
leader lease's timing."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.engine import Policy
from ..domain.spec import TimeLimits


@dataclass(frozen=True)
class SchedulingOptions:
    policy: Policy = field(default_factory=lambda: Policy(reject_never_fitting=False))
    limits: TimeLimits = field(default_factory=TimeLimits)
    max_attempts: int = 3
    lease_ttl_s: float = 5.0
    lease_renew_s: float = 1.0
    # Changes are re-read this far back: a transaction that took its change number earlier but
    # committed later than the last read is still seen (the read is idempotent).
    change_lag_s: float = 5.0
    resync_s: float = 300.0  # a full rebuild now and then bounds what a missed change can cost
    max_pending_writes: int = 5000  # "why pending" rows written per cycle at most (the rest next cycle)
