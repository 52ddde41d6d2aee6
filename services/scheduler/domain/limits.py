"""Abuse limits of an organization (docs/limits.md): how many of its jobs may wait in the queue, and
how fast it may submit (a token bucket: ``submit_rate`` per second, at most ``submit_burst`` at once).

Limits come from the organization's *plan* (seed 002's tiers: free, individual, professional,
enterprise; operators change them and add others), with per-organization overrides on top. An
organization without a plan of its own is on the default plan; with no default plan, unlimited.

Plain Python (no I/O, no clock of its own): the service layer (``service_layer/limits.py``) keeps a
:class:`TokenBucket` per organization and passes it the time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.contracts import limits as contract
from shared.errors import InvalidArgument

_PLAN_NAME = re.compile(contract.PLAN_NAME_PATTERN)


@dataclass(frozen=True)
class Limits:
    """One set of limits; None: no limit (in an override: the plan's value)."""

    max_queued_jobs: int | None = None
    submit_rate: float | None = None  # tokens per second
    submit_burst: int | None = None  # the bucket's size

    def over(self, base: Limits) -> Limits:
        """These overrides on top of ``base`` (a plan): each value given replaces the plan's."""
        rate_given = self.submit_rate is not None
        queued = self.max_queued_jobs
        return Limits(
            max_queued_jobs=queued if queued is not None else base.max_queued_jobs,
            submit_rate=self.submit_rate if rate_given else base.submit_rate,
            submit_burst=self.submit_burst if rate_given else base.submit_burst,
        )

    @property
    def window_s(self) -> int | None:
        """The bucket's time to fill from empty, in whole seconds (the RateLimit-Policy ``w``)."""
        if self.submit_rate is None or self.submit_burst is None:
            return None
        return max(1, math.ceil(self.submit_burst / self.submit_rate))


UNLIMITED = Limits()


@dataclass(frozen=True)
class OrganizationSetting:
    """What the operator set for one organization: a plan (None: the default plan) and overrides."""

    organization_id: UUID
    plan: str | None = None
    overrides: Limits = UNLIMITED


@dataclass(frozen=True)
class Effective:
    """The limits that apply to an organization, and the plan they come from (None: no plan)."""

    plan: str | None
    limits: Limits


@dataclass(frozen=True)
class LimitsPolicy:
    """The plans, the default plan and every organization's setting, as stored."""

    plans: Mapping[str, Limits] = field(default_factory=dict)
    default_plan: str | None = None
    organizations: Mapping[UUID, OrganizationSetting] = field(default_factory=dict)
    version: int = 0

    def limits_of(self, organization: UUID) -> Effective:
        setting = self.organizations.get(organization)
        plan = setting.plan if setting is not None and setting.plan is not None else self.default_plan
        base = self.plans.get(plan, UNLIMITED) if plan is not None else UNLIMITED
        if setting is None:
            return Effective(plan, base)
        return Effective(plan, setting.overrides.over(base))


# ----------------------------------------------------------------------------- validation


def plan_name(raw: str, field_name: str = "plan") -> str:
    if not _PLAN_NAME.match(raw or ""):
        raise InvalidArgument(
            f"{field_name} must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter",
            field=field_name,
        )
    return raw


def limits(max_queued_jobs: int | None, submit_rate: float | None, submit_burst: int | None) -> Limits:
    """Checked limits: a rate and its burst come together (both or neither)."""
    if max_queued_jobs is not None and not 0 <= max_queued_jobs <= contract.LIMITS_MAX_QUEUED_JOBS:
        raise InvalidArgument(
            f"max_queued_jobs must be between 0 and {contract.LIMITS_MAX_QUEUED_JOBS}",
            field="max_queued_jobs",
        )
    if (submit_rate is None) != (submit_burst is None):
        missing = "submit_burst" if submit_burst is None else "submit_rate"
        raise InvalidArgument("submit_rate and submit_burst are set together (or neither)", field=missing)
    if submit_rate is not None and (
        not math.isfinite(submit_rate) or not 0 < submit_rate <= contract.LIMITS_MAX_SUBMIT_RATE
    ):
        raise InvalidArgument(
            f"submit_rate must be above 0 and at most {contract.LIMITS_MAX_SUBMIT_RATE:g} per second",
            field="submit_rate",
        )
    if submit_burst is not None and not 1 <= submit_burst <= contract.LIMITS_MAX_SUBMIT_BURST:
        raise InvalidArgument(
            f"submit_burst must be between 1 and {contract.LIMITS_MAX_SUBMIT_BURST}", field="submit_burst"
        )
    return Limits(
        max_queued_jobs,
        None if submit_rate is None else float(submit_rate),
        submit_burst,
    )


def limits_json(value: Limits) -> dict[str, Any]:
    return {
        "max_queued_jobs": value.max_queued_jobs,
        "submit_rate": value.submit_rate,
        "submit_burst": value.submit_burst,
    }


def setting_json(setting: OrganizationSetting | None) -> dict[str, Any] | None:
    if setting is None:
        return None
    return {"plan": setting.plan, **limits_json(setting.overrides)}


# ----------------------------------------------------------------------------- the token bucket


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a submit takes one. Starts full.

    Time is the caller's monotonic clock in seconds, passed to every call (deterministic in tests)."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
            self.at = now

    def take(self, now: float, count: int = 1) -> float:
        """Take ``count`` tokens (a batch submit takes one per job), all or none: 0.0 when taken, else
        the seconds until that many are there (nothing taken; ``math.inf`` when ``count`` is more than
        the bucket ever holds)."""
        self._refill(now)
        if self.tokens >= count:
            self.tokens -= count
            return 0.0
        if count > self.burst:
            return math.inf
        return (count - self.tokens) / self.rate

    def remaining(self, now: float) -> int:
        """Whole tokens left (the RateLimit ``r``)."""
        self._refill(now)
        return int(self.tokens)

    def reset_after(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        self._refill(now)
        return (self.burst - self.tokens) / self.rate

    def reconfigure(self, rate: float, burst: int, now: float) -> None:
        """New numbers for the bucket: the tokens it holds stay, plus what a larger burst adds (a raised
        limit applies at once), at most the new burst."""
        self._refill(now)
        grown = max(0, burst - self.burst)
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens + grown, float(burst))

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst
