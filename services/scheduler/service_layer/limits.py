"""Abuse limits at submit, and the operator's calls that set them (docs/limits.md).

* :class:`SubmitLimiter` decides at submit, before anything is written: first the organization's
  token bucket (its submit rate), then its cap on queued jobs. Both refusals are
  :class:`~shared.errors.ResourceExhausted` with a retry hint, which ``shared.grpc`` sends as
  trailing metadata (``retry-after-ms`` and the limit's numbers) and the gateway as a 429. The state
  is per organization: one organization's refusals cost nothing (no database, no batch slot) and
  never delay another's submits.
* The queued count is kept in memory and reconciled with the database: one indexed count of the
  organization's queued jobs when the last one is older than ``recount_s``, or when the estimate says
  the cap is reached (at most every ``min_recount_s``, so a client hammering a full queue costs at most
  a few counts a second). Between counts, what this process admitted is added (in flight or
  committed): jobs that left the queue meanwhile are seen at the next count, so the estimate errs on
  the side of the cap and a refusal is always checked against a recent count.
* :class:`LimitsStore`: the limits in force, read again when ``policy_settings.version`` moved
  (checked at most every ``refresh_s``; at once after a change made in this process).
* Commands and handlers of the operator's calls (``PolicyService``'s plan and limit methods): each
  change validates through ``domain/limits``, then in ONE transaction takes the next policy version,
  writes the change and its audit row, and commits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from shared.contracts.limits import LIMIT_QUEUED_JOBS, LIMIT_SUBMIT_RATE, QUEUE_FULL_RETRY_AFTER_SECONDS
from shared.errors import InvalidArgument, NotFound, ResourceExhausted
from shared.handlers import dispatch

from ..domain import limits as rules
from ..domain import policy_admin
from ..domain.limits import Effective, Limits, LimitsPolicy, OrganizationSetting, TokenBucket
from ..domain.policy_admin import OPERATOR, Actor, AuditEntry
from .freshness import KeptFresh

SERVICE = "PolicyService"
MAX_TRACKED = 10_000  # organizations with limiter state kept before idle ones are dropped


# ----------------------------------------------------------------------------- ports


class LimitsUnit(Protocol):
    """One transaction over the policy and limit tables (adapters/limits_repository.py)."""

    async def version(self) -> int: ...
    async def bump_version(self) -> int: ...
    async def load_limits(self) -> LimitsPolicy: ...
    async def plan(self, name: str) -> Limits | None: ...
    async def default_plan(self) -> str | None: ...
    async def organization_setting(self, org: UUID) -> OrganizationSetting | None: ...
    async def set_plan(self, name: str, value: Limits) -> None: ...
    async def set_default_plan(self, name: str | None) -> None: ...
    async def set_organization_setting(self, org: UUID, setting: OrganizationSetting | None) -> None: ...
    async def audit(self, entry: AuditEntry) -> None: ...


class LimitsRepository(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[LimitsUnit]: ...


class QueuedJobs(Protocol):
    async def count(self, org: UUID) -> int: ...


# ----------------------------------------------------------------------------- the store


class LimitsStore:
    """The plans and organization limits in force in this process (see the module docstring)."""

    def __init__(
        self, repo: LimitsRepository, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.repo = repo
        self.refresh_s = refresh_s
        self.clock = clock
        self.current = LimitsPolicy(version=-1)  # nothing read yet
        self._stale = True
        self._checked = -math.inf
        self._lock = asyncio.Lock()
        self._kept = KeptFresh(lambda: self._refresh(force=True), refresh_s, what="limits")

    def invalidate(self) -> None:
        self._stale = True

    def _fresh(self) -> bool:
        return not self._stale and self.clock() - self._checked < self.refresh_s

    async def refresh(self) -> LimitsPolicy:
        """The limits in force, read again if the last read is older than ``refresh_s`` (kept younger
        in the background while they are used: service_layer/freshness.py)."""
        self._kept.used()
        return await self._refresh()

    async def close(self) -> None:
        await self._kept.close()

    async def _refresh(self, *, force: bool = False) -> LimitsPolicy:
        if not force and self._fresh():
            return self.current
        async with self._lock:
            if not force and self._fresh():
                return self.current
            self._stale = False  # a change committing while we read marks it stale again
            async with self.repo(system=True) as unit:
                if await unit.version() != self.current.version:
                    self.current = await unit.load_limits()
            self._checked = self.clock()
        return self.current


# ----------------------------------------------------------------------------- at submit


@dataclass
class _Organization:
    """What the limiter keeps for one organization."""

    bucket: TokenBucket | None = None
    counted: int = 0  # queued jobs at the last count
    counted_at: float = -math.inf
    admitted: int = 0  # admitted here and committed since the last count began
    in_flight: int = 0  # admitted here, not committed (nor given up) yet
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def queued(self) -> int:
        return self.counted + self.admitted + self.in_flight

    def idle(self, now: float) -> bool:
        return self.in_flight == 0 and (self.bucket is None or self.bucket.full(now))


class Admission:
    """A submit let through (``jobs`` of them for a batch): tell it whether its jobs were written
    (``committed``) or not (``released``)."""

    def __init__(self, org: _Organization | None, jobs: int = 1) -> None:
        self._org = org
        self._jobs = jobs

    def committed(self) -> None:
        if self._org is not None:
            self._org.in_flight -= self._jobs
            self._org.admitted += self._jobs
            self._org = None

    def released(self) -> None:
        """No job came of it (refused later, failed, or an idempotent replay of existing jobs)."""
        if self._org is not None:
            self._org.in_flight -= self._jobs
            self._org = None


def _on_plan(effective: Effective) -> str:
    return f" on the {effective.plan} plan" if effective.plan else ""


class SubmitLimiter:
    def __init__(
        self,
        store: LimitsStore,
        queued: QueuedJobs,
        *,
        clock: Callable[[], float] = time.monotonic,
        recount_s: float = 2.0,
        min_recount_s: float = 0.25,
    ) -> None:
        self.store = store
        self.queued = queued
        self.clock = clock
        self.recount_s = recount_s
        self.min_recount_s = min_recount_s
        self._orgs: dict[UUID, _Organization] = {}

    def _organization(self, org: UUID, now: float) -> _Organization:
        state = self._orgs.get(org)
        if state is None:
            if len(self._orgs) >= MAX_TRACKED:
                # Dropping an idle organization loses nothing: a full bucket is a fresh one, and its
                # queued count is taken again.
                self._orgs = {o: s for o, s in self._orgs.items() if not s.idle(now)}
            state = self._orgs[org] = _Organization()
        return state

    async def admit(self, org: UUID, jobs: int = 1) -> Admission:
        """Let a submit of ``jobs`` jobs of ``org`` through (a batch counts as its number of jobs, all
        or none: never partly), or raise :class:`ResourceExhausted`."""
        effective = (await self.store.refresh()).limits_of(org)
        limits = effective.limits
        now = self.clock()
        state = self._organization(org, now)
        self._take_tokens(state, effective, now, jobs)
        cap = limits.max_queued_jobs
        if cap is None:
            return Admission(None)
        if now - state.counted_at >= self.recount_s or state.queued + jobs > cap:
            await self._recount(org, state, cap, jobs)
        if state.queued + jobs > cap:
            room = max(0, cap - state.queued)
            asked = "" if jobs == 1 else f"; a batch of {jobs} jobs does not fit ({room} more may queue now)"
            raise ResourceExhausted(
                f"this organization has reached its cap of {cap} queued jobs{_on_plan(effective)}{asked}; "
                "submit again when some of them have started or been cancelled",
                limit=LIMIT_QUEUED_JOBS,
                quota=cap,
                remaining=room,  # 0 for one job; what a smaller batch could still use
                retry_after_s=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        state.in_flight += jobs
        return Admission(state, jobs)

    def _take_tokens(self, state: _Organization, effective: Effective, now: float, jobs: int) -> None:
        rate, burst = effective.limits.submit_rate, effective.limits.submit_burst
        if rate is None or burst is None:
            state.bucket = None
            return
        if state.bucket is None:
            state.bucket = TokenBucket(rate, burst, now)
        elif (state.bucket.rate, state.bucket.burst) != (rate, burst):
            state.bucket.reconfigure(rate, burst, now)
        wait = state.bucket.take(now, jobs)
        if wait > 0:
            if math.isinf(wait):
                # Never: the bucket holds fewer tokens than the batch has jobs. No wait would do; the
                # hint is the bucket's window (never 0, which would invite a client to retry at once).
                message = (
                    f"a batch of {jobs} jobs is more than this organization's burst of {burst} submits"
                    f"{_on_plan(effective)}; send at most {burst} jobs at once"
                )
                wait = float(effective.limits.window_s or 1)
            else:
                message = (
                    f"this organization may submit {rate:g} jobs a second in bursts of at most {burst}"
                    f"{_on_plan(effective)}; retry in {wait:.2f} s"
                )
            raise ResourceExhausted(
                message,
                limit=LIMIT_SUBMIT_RATE,
                quota=burst,
                remaining=state.bucket.remaining(now),  # 0 for one job, as before
                retry_after_s=wait,
                window_s=effective.limits.window_s,
            )

    async def _recount(self, org: UUID, state: _Organization, cap: int, jobs: int = 1) -> None:
        async with state.lock:  # one count at a time per organization; waiters use its result
            now = self.clock()
            if now - state.counted_at < self.min_recount_s:
                return
            if now - state.counted_at < self.recount_s and state.queued + jobs <= cap:
                return  # counted meanwhile, and there is room
            # Commits from here on are added to the count; one the count already saw is then counted
            # twice until the next count (on the side of the cap, never past it).
            state.admitted = 0
            counted = await self.queued.count(org)
            state.counted, state.counted_at = counted, now


# ----------------------------------------------------------------------------- operator commands


@dataclass(frozen=True)
class ListPlans:
    pass


@dataclass(frozen=True)
class SetPlan:
    name: str
    max_queued_jobs: int | None = None
    submit_rate: float | None = None
    submit_burst: int | None = None
    actor: Actor = OPERATOR


@dataclass(frozen=True)
class SetDefaultPlan:
    plan: str  # "": organizations without a plan of their own have no limits
    actor: Actor = OPERATOR


@dataclass(frozen=True)
class GetOrganizationLimits:
    organization_id: str


@dataclass(frozen=True)
class SetOrganizationLimits:
    organization_id: str
    plan: str = ""  # "": the default plan
    max_queued_jobs: int | None = None  # None: the plan's (likewise the rate and its burst)
    submit_rate: float | None = None
    submit_burst: int | None = None
    actor: Actor = OPERATOR


@dataclass(frozen=True)
class DeleteOrganizationLimits:
    organization_id: str
    actor: Actor = OPERATOR


@dataclass(frozen=True)
class LimitsDependencies:
    repo: LimitsRepository
    store: LimitsStore | None = None  # told of every change made here


@dataclass(frozen=True)
class OrganizationLimits:
    """What was set for an organization (None: nothing) and what applies to it."""

    organization_id: UUID
    setting: OrganizationSetting | None
    effective: Effective


# ----------------------------------------------------------------------------- handlers


def _changed(deps: LimitsDependencies) -> None:
    if deps.store is not None:
        deps.store.invalidate()


async def _known_plan(unit: LimitsUnit, name: str) -> str:
    rules.plan_name(name)
    if await unit.plan(name) is None:
        raise InvalidArgument(f"there is no plan named {name!r}", field="plan")
    return name


async def list_plans(cmd: ListPlans, deps: LimitsDependencies) -> LimitsPolicy:
    async with deps.repo(system=True) as unit:
        return await unit.load_limits()


async def set_plan(cmd: SetPlan, deps: LimitsDependencies) -> tuple[str, Limits]:
    name = rules.plan_name(cmd.name, "name")
    value = rules.limits(cmd.max_queued_jobs, cmd.submit_rate, cmd.submit_burst)
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.plan(name)
        await unit.set_plan(name, value)
        await unit.audit(
            AuditEntry(
                cmd.actor,
                f"{SERVICE}/SetPlan",
                None,
                {"plan": name},
                None if before is None else rules.limits_json(before),
                rules.limits_json(value),
            )
        )
    _changed(deps)
    return name, value


async def set_default_plan(cmd: SetDefaultPlan, deps: LimitsDependencies) -> LimitsPolicy:
    async with deps.repo(system=True) as unit:
        plan = await _known_plan(unit, cmd.plan) if cmd.plan else None
        await unit.bump_version()
        before = await unit.default_plan()
        await unit.set_default_plan(plan)
        await unit.audit(AuditEntry(cmd.actor, f"{SERVICE}/SetDefaultPlan", None, {}, before, plan))
        stored = await unit.load_limits()
    _changed(deps)
    return stored


async def _organization_limits(unit: LimitsUnit, org: UUID) -> OrganizationLimits:
    return OrganizationLimits(
        org, await unit.organization_setting(org), (await unit.load_limits()).limits_of(org)
    )


async def get_organization_limits(cmd: GetOrganizationLimits, deps: LimitsDependencies) -> OrganizationLimits:
    org = policy_admin.organization_id(cmd.organization_id)
    async with deps.repo(system=True) as unit:
        return await _organization_limits(unit, org)


async def set_organization_limits(cmd: SetOrganizationLimits, deps: LimitsDependencies) -> OrganizationLimits:
    org = policy_admin.organization_id(cmd.organization_id)
    overrides = rules.limits(cmd.max_queued_jobs, cmd.submit_rate, cmd.submit_burst)
    async with deps.repo(system=True) as unit:
        plan = await _known_plan(unit, cmd.plan) if cmd.plan else None
        setting = OrganizationSetting(org, plan, overrides)
        await unit.bump_version()
        before = await unit.organization_setting(org)
        await unit.set_organization_setting(org, setting)
        await unit.audit(
            AuditEntry(
                cmd.actor,
                f"{SERVICE}/SetOrganizationLimits",
                org,
                {"organization_id": str(org)},
                rules.setting_json(before),
                rules.setting_json(setting),
            )
        )
        found = await _organization_limits(unit, org)
    _changed(deps)
    return found


async def delete_organization_limits(
    cmd: DeleteOrganizationLimits, deps: LimitsDependencies
) -> OrganizationLimits:
    org = policy_admin.organization_id(cmd.organization_id)
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.organization_setting(org)
        if before is None:
            raise NotFound("this organization has no plan or limits of its own")
        await unit.set_organization_setting(org, None)
        await unit.audit(
            AuditEntry(
                cmd.actor,
                f"{SERVICE}/DeleteOrganizationLimits",
                org,
                {"organization_id": str(org)},
                rules.setting_json(before),
                None,
            )
        )
        found = await _organization_limits(unit, org)
    _changed(deps)
    return found


Handler = Callable[[Any, LimitsDependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    ListPlans: list_plans,
    SetPlan: set_plan,
    SetDefaultPlan: set_default_plan,
    GetOrganizationLimits: get_organization_limits,
    SetOrganizationLimits: set_organization_limits,
    DeleteOrganizationLimits: delete_organization_limits,
}


async def handle(cmd: object, deps: LimitsDependencies) -> Any:
    return await dispatch(HANDLERS, cmd, deps)
