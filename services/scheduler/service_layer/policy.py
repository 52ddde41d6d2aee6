"""Scheduling policy through authorised admin calls, recorded in an audit trail, applied on the next
cycle (docs/policy.md).

* Commands and their handlers (:data:`HANDLERS`, :func:`handle`): each change validates through
  ``domain/policy_admin``, then in ONE transaction takes the next policy version (which serialises
  changes), writes the change and its audit row, and commits; then the local :class:`PolicyStore` is
  told and the scheduling loop woken.
* :class:`PolicyStore`: the policy in force in this process. It reads the version at most every
  ``refresh_s`` (at once after a change made in this process) and the whole policy only when the
  version moved: a replica that did not take the call still applies it within ``refresh_s``. On its
  first read it seeds the tables from the configured policy (settings) if that was never done.
* :class:`PolicyAwareCapacity`: admission at submit under the same policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.contracts.limits import POLICY_MAX_PREEMPTION_GRACE_SECONDS as MAX_PREEMPTION_GRACE_SECONDS
from shared.errors import InvalidArgument, NotFound
from shared.handlers import dispatch

from ..domain import policy_admin as rules
from ..domain.engine import Policy, Quota, Shape
from ..domain.policy_admin import OPERATOR, Actor, AuditEntry, ProjectPolicyEntry, StoredPolicy, UserCapEntry
from .capacity import FleetCapacity
from .freshness import KeptFresh
from .limits import LimitsDependencies
from .unit_of_work import UnitOfWorkFactory
from .wakeup import Wakeup

log = logging.getLogger("gpufleet.scheduler.policy")

SERVICE = "PolicyService"


# ----------------------------------------------------------------------------- ports


class PolicyUnit(Protocol):
    """One transaction over the policy tables (adapters/policy_repository.py)."""

    async def version(self) -> int: ...
    async def load(self) -> StoredPolicy: ...
    async def fair_share(self, org: UUID) -> float | None: ...
    async def gpu_type_weight(self, gpu_type: str) -> float | None: ...
    async def quota(self, org: UUID, gpu_type: str) -> Quota | None: ...
    async def user_caps(self, org: UUID) -> tuple[UserCapEntry, ...]: ...
    async def project_policies(self, org: UUID) -> tuple[ProjectPolicyEntry, ...]: ...
    async def replace_project_policies(self, org: UUID, entries: tuple[ProjectPolicyEntry, ...]) -> None: ...
    async def audit_entries(
        self, org: UUID | None, before_id: int | None, limit: int
    ) -> list[AuditEntry]: ...
    async def bump_version(self) -> int: ...
    async def seeded(self) -> bool: ...
    async def mark_seeded(self) -> None: ...
    async def set_globals(
        self, *, half_life_s: float | None = None, dedicated_lending_limit: int | None = None
    ) -> None: ...
    async def set_preemption(self, *, reclaim: bool | None = None, grace_s: int | None = None) -> None: ...
    async def set_fair_share(self, org: UUID, weight: float | None) -> None: ...
    async def set_gpu_type_weight(self, gpu_type: str, weight: float | None) -> None: ...
    async def set_quota(self, org: UUID, gpu_type: str, quota: Quota | None) -> None: ...
    async def replace_user_caps(self, org: UUID, caps: tuple[UserCapEntry, ...]) -> None: ...
    async def audit(self, entry: AuditEntry) -> None: ...


class PolicyRepository(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[PolicyUnit]: ...


# ----------------------------------------------------------------------------- the store


async def seed(repo: PolicyRepository, configured: StoredPolicy) -> bool:
    """Copy the configured (settings) policy into empty tables, once per database: True if this call
    did. Recorded in the audit trail as the operator's ``settings.seed``."""
    async with repo(system=True) as unit:
        if await unit.seeded():
            return False
        await unit.bump_version()
        await unit.set_globals(
            half_life_s=configured.half_life_s, dedicated_lending_limit=configured.dedicated_lending_limit
        )
        for org, w in configured.fair_shares.items():
            await unit.set_fair_share(org, w)
        for t, w in configured.gpu_type_weights.items():
            await unit.set_gpu_type_weight(t, w)
        for (org, t), q in configured.quotas.items():
            await unit.set_quota(org, t, q)
        for org, entries in configured.user_caps.items():
            await unit.replace_user_caps(org, entries)
        await unit.mark_seeded()
        after = rules.policy_json(await unit.load())
        await unit.audit(AuditEntry(OPERATOR, "settings.seed", None, {}, None, after))
    return True


class PolicyStore:
    """The policy in force in this process (see the module docstring)."""

    def __init__(self, repo: PolicyRepository, configured: Policy, *, refresh_s: float = 1.0) -> None:
        self.repo = repo
        self.configured = configured
        self.refresh_s = refresh_s
        self.current: Policy = configured
        self.version = -1  # nothing read yet
        self._seeded = False
        self._stale = True
        self._checked = -float("inf")
        self._lock = asyncio.Lock()
        self._fresh = KeptFresh(lambda: self._refresh(force=True), refresh_s, what="policy")

    def invalidate(self) -> None:
        """A change committed in this process: read it on the next refresh, whatever the interval."""
        self._stale = True

    async def refresh(self) -> Policy:
        """The policy in force, read again if the last read is older than ``refresh_s`` (kept younger
        in the background while it is used: service_layer/freshness.py)."""
        self._fresh.used()
        return await self._refresh()

    async def close(self) -> None:
        await self._fresh.close()

    async def _refresh(self, *, force: bool = False) -> Policy:
        if not force and not self._stale and time.monotonic() - self._checked < self.refresh_s:
            return self.current
        async with self._lock:
            if not force and not self._stale and time.monotonic() - self._checked < self.refresh_s:
                return self.current
            self._stale = False  # a change committing while we read marks it stale again
            if not self._seeded:
                if await seed(self.repo, StoredPolicy.of_engine(self.configured)):
                    log.info("scheduling policy seeded from settings")
                self._seeded = True
            async with self.repo(system=True) as unit:
                version = await unit.version()
                stored = await unit.load() if version != self.version else None
            if stored is not None:
                self.current, self.version = stored.engine_policy(self.configured), stored.version
                log.info("scheduling policy loaded", extra={"version": stored.version})
            self._checked = time.monotonic()
        return self.current


class PolicyAwareCapacity(FleetCapacity):
    """Admission at submit (service_layer/capacity.py) under the stored policy."""

    def __init__(self, uow: UnitOfWorkFactory, store: PolicyStore) -> None:
        super().__init__(uow, store.current)
        self._store = store

    async def never_fits(self, shape: Shape, organization: UUID) -> str | None:
        self._policy = await self._store.refresh()
        return await super().never_fits(shape, organization)


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Caller:
    """An organization's user through one of its keys (``role`` as identity answered it)."""

    organization_id: UUID
    user_id: UUID | None
    api_key_id: UUID | None
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(False, self.organization_id, self.user_id, self.api_key_id)


@dataclass(frozen=True)
class GetPolicy:
    pass


@dataclass(frozen=True)
class SetFairShare:
    organization_id: str
    weight: float | None  # None: back to the default (1)
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class SetHalfLife:
    half_life_s: float
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class SetGpuTypeWeight:
    gpu_type: str
    weight: float | None  # None: back to the default (1)
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class SetDedicatedLendingLimit:
    limit: int
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class SetPreemption:
    """Preemption of borrowed jobs to give lent capacity back (docs/policy.md#preemption); None
    leaves a field as it is."""

    reclaim_lent_capacity: bool | None = None
    grace_seconds: int | None = None
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class SetQuota:
    organization_id: str
    gpu_type: str
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class DeleteQuota:
    organization_id: str
    gpu_type: str
    by: Actor = OPERATOR  # who: the operator principal identity named


@dataclass(frozen=True)
class ListAudit:
    organization_id: str = ""  # "" every entry
    before_id: int = 0
    limit: int = 0


@dataclass(frozen=True)
class GetUserCaps:
    caller: Caller


@dataclass(frozen=True)
class SetUserCaps:
    caller: Caller
    caps: tuple[tuple[str, int | None, int | None], ...]  # (user id or "", max_running_jobs, max_gpus)


@dataclass(frozen=True)
class GetProjectPolicies:
    caller: Caller


@dataclass(frozen=True)
class SetProjectPolicies:
    caller: Caller
    # (project id, weight, max_running_jobs, max_gpus); None: the default (weight 1, no cap)
    entries: tuple[tuple[str, float | None, int | None, int | None], ...]


@dataclass(frozen=True)
class ListOrganizationAudit:
    caller: Caller
    before_id: int = 0
    limit: int = 0


@dataclass(frozen=True)
class PolicyDependencies:
    repo: PolicyRepository
    store: PolicyStore | None = None  # told of every change made here (None: no store in this process)
    wakeup: Wakeup = field(default_factory=Wakeup)
    # Plans and per-organization abuse limits (service_layer/limits.py; None: not served here).
    limits: LimitsDependencies | None = None


@dataclass(frozen=True)
class OrganizationCaps:
    organization_id: UUID
    caps: tuple[UserCapEntry, ...]


@dataclass(frozen=True)
class OrganizationProjectPolicies:
    organization_id: UUID
    policies: tuple[ProjectPolicyEntry, ...]


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before_id: int  # 0: no more


# ----------------------------------------------------------------------------- handlers


async def _changed(deps: PolicyDependencies) -> None:
    if deps.store is not None:
        deps.store.invalidate()
    deps.wakeup.set()  # the next cycle runs under the change


async def get_policy(cmd: GetPolicy, deps: PolicyDependencies) -> StoredPolicy:
    async with deps.repo(system=True) as unit:
        return await unit.load()


async def set_fair_share(cmd: SetFairShare, deps: PolicyDependencies) -> StoredPolicy:
    org = rules.organization_id(cmd.organization_id)
    weight = None if cmd.weight is None else rules.weight(cmd.weight)
    method = "SetFairShare" if weight is not None else "DeleteFairShare"
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.fair_share(org)
        if weight is None and before is None:
            raise NotFound("this organization has no fair-share weight of its own")
        await unit.set_fair_share(org, weight)
        await unit.audit(
            AuditEntry(cmd.by, f"{SERVICE}/{method}", org, {"organization_id": str(org)}, before, weight)
        )
        stored = await unit.load()
    await _changed(deps)
    return stored


async def set_half_life(cmd: SetHalfLife, deps: PolicyDependencies) -> StoredPolicy:
    value = rules.half_life(cmd.half_life_s)
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = (await unit.load()).half_life_s
        await unit.set_globals(half_life_s=value)
        await unit.audit(AuditEntry(cmd.by, f"{SERVICE}/SetHalfLife", None, {}, before, value))
        stored = await unit.load()
    await _changed(deps)
    return stored


async def set_gpu_type_weight(cmd: SetGpuTypeWeight, deps: PolicyDependencies) -> StoredPolicy:
    gpu_type = rules.gpu_type(cmd.gpu_type)
    weight = None if cmd.weight is None else rules.weight(cmd.weight)
    method = "SetGpuTypeWeight" if weight is not None else "DeleteGpuTypeWeight"
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.gpu_type_weight(gpu_type)
        if weight is None and before is None:
            raise NotFound("this GPU type has no weight of its own")
        await unit.set_gpu_type_weight(gpu_type, weight)
        await unit.audit(
            AuditEntry(cmd.by, f"{SERVICE}/{method}", None, {"gpu_type": gpu_type}, before, weight)
        )
        stored = await unit.load()
    await _changed(deps)
    return stored


async def set_dedicated_lending_limit(
    cmd: SetDedicatedLendingLimit, deps: PolicyDependencies
) -> StoredPolicy:
    value = rules.count(cmd.limit, "limit") or 0
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = (await unit.load()).dedicated_lending_limit
        await unit.set_globals(dedicated_lending_limit=value)
        await unit.audit(AuditEntry(cmd.by, f"{SERVICE}/SetDedicatedLendingLimit", None, {}, before, value))
        stored = await unit.load()
    await _changed(deps)
    return stored


async def set_preemption(cmd: SetPreemption, deps: PolicyDependencies) -> StoredPolicy:
    grace = cmd.grace_seconds
    if grace is not None and not 0 <= grace <= MAX_PREEMPTION_GRACE_SECONDS:
        raise InvalidArgument(
            f"grace_seconds must be between 0 and {MAX_PREEMPTION_GRACE_SECONDS}", field="grace_seconds"
        )
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        was = await unit.load()
        before = {"reclaim_lent_capacity": was.reclaim_lent_capacity, "grace_seconds": was.preemption_grace_s}
        await unit.set_preemption(reclaim=cmd.reclaim_lent_capacity, grace_s=grace)
        stored = await unit.load()
        after = {
            "reclaim_lent_capacity": stored.reclaim_lent_capacity,
            "grace_seconds": stored.preemption_grace_s,
        }
        await unit.audit(AuditEntry(cmd.by, f"{SERVICE}/SetPreemption", None, {}, before, after))
    await _changed(deps)
    return stored


async def set_quota(cmd: SetQuota, deps: PolicyDependencies) -> Quota:
    org = rules.organization_id(cmd.organization_id)
    gpu_type = rules.gpu_type(cmd.gpu_type)
    quota = rules.quota(cmd.nominal, cmd.borrowing_limit, cmd.lending_limit)
    target = {"organization_id": str(org), "gpu_type": gpu_type}
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.quota(org, gpu_type)
        await unit.set_quota(org, gpu_type, quota)
        await unit.audit(
            AuditEntry(
                cmd.by,
                f"{SERVICE}/SetQuota",
                org,
                target,
                rules.quota_json(before),
                rules.quota_json(quota),
            )
        )
    await _changed(deps)
    return quota


async def delete_quota(cmd: DeleteQuota, deps: PolicyDependencies) -> StoredPolicy:
    org = rules.organization_id(cmd.organization_id)
    gpu_type = rules.gpu_type(cmd.gpu_type)
    target = {"organization_id": str(org), "gpu_type": gpu_type}
    async with deps.repo(system=True) as unit:
        await unit.bump_version()
        before = await unit.quota(org, gpu_type)
        if before is None:
            raise NotFound("no quota for this organization and GPU type")
        await unit.set_quota(org, gpu_type, None)
        await unit.audit(
            AuditEntry(cmd.by, f"{SERVICE}/DeleteQuota", org, target, rules.quota_json(before), None)
        )
        stored = await unit.load()
    await _changed(deps)
    return stored


def _page(limit: int, before_id: int) -> tuple[int, int | None]:
    if limit < 0 or limit > MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if before_id < 0:
        raise InvalidArgument("before_id must be positive", field="before_id")
    return limit or DEFAULT_PAGE, before_id or None


async def _audit_page(unit: PolicyUnit, org: UUID | None, limit: int, before: int | None) -> AuditPage:
    entries = await unit.audit_entries(org, before, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return AuditPage(entries, entries[-1].id if more and entries else 0)


async def list_audit(cmd: ListAudit, deps: PolicyDependencies) -> AuditPage:
    org = rules.organization_id(cmd.organization_id) if cmd.organization_id else None
    limit, before = _page(cmd.limit, cmd.before_id)
    async with deps.repo(system=True) as unit:
        return await _audit_page(unit, org, limit, before)


async def get_user_caps(cmd: GetUserCaps, deps: PolicyDependencies) -> OrganizationCaps:
    rules.require_org_admin(cmd.caller.role)
    org = cmd.caller.organization_id
    async with deps.repo(org_id=org) as unit:
        return OrganizationCaps(org, await unit.user_caps(org))


async def set_user_caps(cmd: SetUserCaps, deps: PolicyDependencies) -> OrganizationCaps:
    rules.require_org_admin(cmd.caller.role)
    caps = rules.user_caps(cmd.caps)
    org = cmd.caller.organization_id
    async with deps.repo(org_id=org) as unit:
        await unit.bump_version()
        before = await unit.user_caps(org)
        await unit.replace_user_caps(org, caps)
        await unit.audit(
            AuditEntry(
                cmd.caller.actor,
                f"{SERVICE}/SetUserCaps",
                org,
                {"organization_id": str(org)},
                rules.caps_json(before),
                rules.caps_json(caps),
            )
        )
    await _changed(deps)
    return OrganizationCaps(org, caps)


async def get_project_policies(
    cmd: GetProjectPolicies, deps: PolicyDependencies
) -> OrganizationProjectPolicies:
    rules.require_org_admin(cmd.caller.role)
    org = cmd.caller.organization_id
    async with deps.repo(org_id=org) as unit:
        return OrganizationProjectPolicies(org, await unit.project_policies(org))


async def set_project_policies(
    cmd: SetProjectPolicies, deps: PolicyDependencies
) -> OrganizationProjectPolicies:
    """Replace the organization's per-project weights and caps; audited like user caps."""
    rules.require_org_admin(cmd.caller.role)
    entries = rules.project_policies(cmd.entries)
    org = cmd.caller.organization_id
    async with deps.repo(org_id=org) as unit:
        await unit.bump_version()
        before = await unit.project_policies(org)
        await unit.replace_project_policies(org, entries)
        await unit.audit(
            AuditEntry(
                cmd.caller.actor,
                f"{SERVICE}/SetProjectPolicies",
                org,
                {"organization_id": str(org)},
                rules.project_policies_json(before),
                rules.project_policies_json(entries),
            )
        )
    await _changed(deps)
    return OrganizationProjectPolicies(org, entries)


async def list_organization_audit(cmd: ListOrganizationAudit, deps: PolicyDependencies) -> AuditPage:
    rules.require_org_admin(cmd.caller.role)
    limit, before = _page(cmd.limit, cmd.before_id)
    org = cmd.caller.organization_id
    # The organization's scope: row-level security backs up the filter.
    async with deps.repo(org_id=org) as unit:
        return await _audit_page(unit, org, limit, before)


Handler = Callable[[Any, PolicyDependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    GetPolicy: get_policy,
    SetFairShare: set_fair_share,
    SetHalfLife: set_half_life,
    SetGpuTypeWeight: set_gpu_type_weight,
    SetDedicatedLendingLimit: set_dedicated_lending_limit,
    SetPreemption: set_preemption,
    SetQuota: set_quota,
    DeleteQuota: delete_quota,
    ListAudit: list_audit,
    GetUserCaps: get_user_caps,
    SetUserCaps: set_user_caps,
    ListOrganizationAudit: list_organization_audit,
    GetProjectPolicies: get_project_policies,
    SetProjectPolicies: set_project_policies,
}


async def handle(cmd: object, deps: PolicyDependencies) -> Any:
    return await dispatch(HANDLERS, cmd, deps)
