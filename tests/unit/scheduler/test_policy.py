"""Scheduling policy through admin calls: validation, the mapping onto the engine's Policy, the
handlers over an in-memory repository (audit rows, roles, versions), the store that the loop and
admission read, and the loop taking a change in on its next step."""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.scheduler.domain import policy_admin as rules
from services.scheduler.domain.engine import Policy, Quota, UserCap
from services.scheduler.domain.policy_admin import AuditEntry, StoredPolicy, UserCapEntry
from services.scheduler.service_layer import policy as cmds
from services.scheduler.service_layer.policy import PolicyDependencies, PolicyStore, handle
from services.scheduler.service_layer.wakeup import Wakeup
from shared.errors import InvalidArgument, NotFound, PermissionDenied

# ----------------------------------------------------------------------------- fakes


@dataclass
class _Tables:
    policy: StoredPolicy = field(default_factory=StoredPolicy)
    seeded: bool = False
    audit: list[AuditEntry] = field(default_factory=list)


class FakeUnit:
    """Works on a copy; the copy replaces the tables only on commit (like a transaction)."""

    def __init__(self, tables: _Tables, org: UUID | None) -> None:
        self.t = copy.deepcopy(tables)
        self.org = org
        self.reads = 0

    def _edit(self, **changes: Any) -> None:
        self.t.policy = replace(self.t.policy, **changes)

    async def version(self) -> int:
        self.reads += 1
        return self.t.policy.version

    async def load(self) -> StoredPolicy:
        return self.t.policy

    async def fair_share(self, org: UUID) -> float | None:
        return self.t.policy.fair_shares.get(org)

    async def gpu_type_weight(self, gpu_type: str) -> float | None:
        return self.t.policy.gpu_type_weights.get(gpu_type)

    async def quota(self, org: UUID, gpu_type: str) -> Quota | None:
        return self.t.policy.quotas.get((org, gpu_type))

    async def user_caps(self, org: UUID) -> tuple[UserCapEntry, ...]:
        assert self.org in (None, org), "row-level security would hide it"
        return tuple(self.t.policy.user_caps.get(org, ()))

    async def audit_entries(self, org: UUID | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        rows = [e for e in reversed(self.t.audit) if org is None or e.organization_id == org]
        rows = [e for e in rows if self.org is None or e.organization_id == self.org]
        return [e for e in rows if before_id is None or e.id < before_id][:limit]

    async def bump_version(self) -> int:
        self._edit(version=self.t.policy.version + 1)
        return self.t.policy.version

    async def seeded(self) -> bool:
        return self.t.seeded

    async def mark_seeded(self) -> None:
        self.t.seeded = True

    async def set_globals(
        self, *, half_life_s: float | None = None, dedicated_lending_limit: int | None = None
    ):
        if half_life_s is not None:
            self._edit(half_life_s=half_life_s)
        if dedicated_lending_limit is not None:
            self._edit(dedicated_lending_limit=dedicated_lending_limit)

    @staticmethod
    def _put(mapping: Any, key: Any, value: Any) -> dict:
        out = dict(mapping)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
        return out

    async def set_fair_share(self, org: UUID, weight: float | None) -> None:
        self._edit(fair_shares=self._put(self.t.policy.fair_shares, org, weight))

    async def set_gpu_type_weight(self, gpu_type: str, weight: float | None) -> None:
        self._edit(gpu_type_weights=self._put(self.t.policy.gpu_type_weights, gpu_type, weight))

    async def set_quota(self, org: UUID, gpu_type: str, quota: Quota | None) -> None:
        self._edit(quotas=self._put(self.t.policy.quotas, (org, gpu_type), quota))

    async def replace_user_caps(self, org: UUID, caps: tuple[UserCapEntry, ...]) -> None:
        self._edit(user_caps=self._put(self.t.policy.user_caps, org, caps or None))

    async def audit(self, entry: AuditEntry) -> None:
        self.t.audit.append(replace(entry, id=len(self.t.audit) + 1))


class FakeRepo:
    def __init__(self) -> None:
        self.tables = _Tables()
        self.units: list[FakeUnit] = []

    @asynccontextmanager
    async def __call__(self, *, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[FakeUnit]:
        assert system or org_id is not None
        unit = FakeUnit(self.tables, org_id)
        self.units.append(unit)
        yield unit
        self.tables = unit.t  # commit


def _deps(repo: FakeRepo, store: PolicyStore | None = None) -> PolicyDependencies:
    return PolicyDependencies(repo, store, Wakeup())


ORG, OTHER = uuid4(), uuid4()


def _caller(role: str = "admin", org: UUID = ORG) -> cmds.Caller:
    return cmds.Caller(org, uuid4(), uuid4(), role)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan, 1e7])
def test_a_weight_must_be_positive_finite_and_bounded(value: float):
    with pytest.raises(InvalidArgument) as err:
        rules.weight(value)
    assert err.value.field == "weight"


@pytest.mark.parametrize("value", [0.0, 59.0, 366 * 24 * 3600.0, math.nan])
def test_a_half_life_is_between_a_minute_and_a_year(value: float):
    with pytest.raises(InvalidArgument) as err:
        rules.half_life(value)
    assert err.value.field == "half_life_seconds"


@pytest.mark.parametrize(
    ("nominal", "borrowing", "lending", "field"),
    [(-1, None, None, "nominal"), (1, -1, None, "borrowing_limit"), (1, 0, 2_000_000, "lending_limit")],
)
def test_a_quota_names_the_field_it_refuses(
    nominal: int, borrowing: int | None, lending: int | None, field: str
):
    with pytest.raises(InvalidArgument) as err:
        rules.quota(nominal, borrowing, lending)
    assert err.value.field == field


def test_a_quota_keeps_absent_limits_as_no_limit():
    assert rules.quota(2, None, 0) == Quota(2, None, 0)


@pytest.mark.parametrize("name", ["", "A100", "-x", "a" * 65, "a b", "a/b"])
def test_a_gpu_type_has_the_catalogs_shape(name: str):
    with pytest.raises(InvalidArgument):
        rules.gpu_type(name)


def test_user_caps_refuse_a_user_twice_and_a_bad_id():
    user = str(uuid4())
    with pytest.raises(InvalidArgument) as err:
        rules.user_caps([(user, 1, None), (user, 2, None)])
    assert err.value.field == "caps[1].user_id"
    with pytest.raises(InvalidArgument) as err:
        rules.user_caps([("", 1, None), ("", 2, None)])
    assert err.value.field == "caps[1].user_id"
    with pytest.raises(InvalidArgument) as err:
        rules.user_caps([("not-a-uuid", 1, None)])
    assert err.value.field == "caps[0].user_id"
    with pytest.raises(InvalidArgument) as err:
        rules.user_caps([("", -1, None)])
    assert err.value.field == "caps[0].max_running_jobs"


@pytest.mark.parametrize("role", ["member", "viewer", ""])
def test_only_owners_and_admins_manage_caps(role: str):
    with pytest.raises(PermissionDenied):
        rules.require_org_admin(role)
    rules.require_org_admin("owner")
    rules.require_org_admin("admin")


# ----------------------------------------------------------------------------- mapping


def test_the_stored_policy_becomes_the_engines_with_the_rest_of_the_configuration_kept():
    user = uuid4()
    stored = StoredPolicy(
        version=3,
        half_life_s=3600.0,
        dedicated_lending_limit=2,
        fair_shares={ORG: 2.0},
        gpu_type_weights={"h100-80gb": 2.5},
        quotas={(ORG, "h100-80gb"): Quota(1, 0, None)},
        user_caps={ORG: (UserCapEntry(None, UserCap(4, None)), UserCapEntry(user, UserCap(1, 2)))},
    )
    base = Policy(reject_never_fitting=False, fabric_labels=("rack",))
    policy = stored.engine_policy(base)
    assert policy.shares(("org", ORG)) == 2.0 and policy.shares(("org", OTHER)) == 1.0
    assert policy.half_life_s == 3600.0 and policy.weight("h100-80gb") == 2.5 and policy.weight("l40s") == 1.0
    assert policy.quotas == {(ORG, "h100-80gb"): Quota(1, 0, None)}
    assert policy.dedicated_lending_limit == 2
    assert policy.user_cap(ORG, user) == UserCap(1, 2)
    assert policy.user_cap(ORG, uuid4()) == UserCap(4, None)
    assert policy.user_cap(OTHER, user) is None
    assert (policy.reject_never_fitting, policy.fabric_labels) == (False, ("rack",))
    # Settings seed the tables in the same shape.
    again = StoredPolicy.of_engine(policy)
    assert again.engine_policy(base) == policy


def test_only_half_life_and_gpu_weights_change_how_usage_is_weighed():
    base = Policy()
    assert not rules.usage_rules_changed(base, replace(base, quotas={(ORG, "x"): Quota(1)}))
    assert not rules.usage_rules_changed(base, replace(base, org_shares={ORG: 3.0}))
    assert rules.usage_rules_changed(base, replace(base, half_life_s=60.0))
    assert rules.usage_rules_changed(base, replace(base, gpu_type_weights={"x": 2.0}))


# ----------------------------------------------------------------------------- handlers


async def test_a_quota_change_is_audited_with_what_it_replaced():
    repo = FakeRepo()
    deps = _deps(repo)
    quota = await handle(cmds.SetQuota(str(ORG), "h100-80gb", 1, 0), deps)
    assert quota == Quota(1, 0, None)
    await handle(cmds.SetQuota(str(ORG), "h100-80gb", 1, 1, 0), deps)
    first, second = repo.tables.audit
    assert (first.method, first.organization_id, first.actor.operator) == (
        "PolicyService/SetQuota",
        ORG,
        True,
    )
    assert first.target == {"organization_id": str(ORG), "gpu_type": "h100-80gb"}
    assert first.before is None
    assert first.after == {"nominal": 1, "borrowing_limit": 0, "lending_limit": None}
    assert second.before == first.after
    assert second.after == {"nominal": 1, "borrowing_limit": 1, "lending_limit": 0}
    assert repo.tables.policy.version == 2
    assert deps.wakeup.is_set()  # the loop runs a cycle under it now

    await handle(cmds.DeleteQuota(str(ORG), "h100-80gb"), deps)
    assert repo.tables.policy.quotas == {} and repo.tables.audit[-1].after is None
    with pytest.raises(NotFound):
        await handle(cmds.DeleteQuota(str(ORG), "h100-80gb"), deps)
    assert len(repo.tables.audit) == 3  # a refused change writes nothing


async def test_an_invalid_change_writes_nothing():
    repo = FakeRepo()
    with pytest.raises(InvalidArgument) as err:
        await handle(cmds.SetQuota("not-an-org", "h100-80gb", 1), _deps(repo))
    assert err.value.field == "organization_id"
    with pytest.raises(InvalidArgument):
        await handle(cmds.SetFairShare(str(ORG), 0.0), _deps(repo))
    assert repo.units == [] and repo.tables.audit == []


async def test_global_settings_are_audited_without_an_organization():
    repo = FakeRepo()
    deps = _deps(repo)
    stored = await handle(cmds.SetHalfLife(3600.0), deps)
    assert stored.half_life_s == 3600.0
    stored = await handle(cmds.SetGpuTypeWeight("h100-80gb", 2.0), deps)
    assert stored.gpu_type_weights == {"h100-80gb": 2.0}
    stored = await handle(cmds.SetFairShare(str(ORG), 3.0), deps)
    assert stored.fair_shares == {ORG: 3.0}
    stored = await handle(cmds.SetFairShare(str(ORG), None), deps)
    assert stored.fair_shares == {}
    methods = [(e.method, e.organization_id, e.before, e.after) for e in repo.tables.audit]
    assert methods == [
        ("PolicyService/SetHalfLife", None, 7 * 24 * 3600.0, 3600.0),
        ("PolicyService/SetGpuTypeWeight", None, None, 2.0),
        ("PolicyService/SetFairShare", ORG, None, 3.0),
        ("PolicyService/DeleteFairShare", ORG, 3.0, None),
    ]


async def test_an_org_admin_sets_its_own_caps_and_the_audit_names_who():
    repo = FakeRepo()
    caller = _caller("owner")
    user = uuid4()
    done = await handle(cmds.SetUserCaps(caller, (("", 1, None), (str(user), None, 2))), _deps(repo))
    assert done.organization_id == ORG
    assert done.caps == (UserCapEntry(None, UserCap(1, None)), UserCapEntry(user, UserCap(None, 2)))
    assert repo.units[-1].org == ORG  # ran in the organization's own scope
    entry = repo.tables.audit[-1]
    assert (entry.actor.operator, entry.actor.user_id, entry.actor.api_key_id) == (
        False,
        caller.user_id,
        caller.api_key_id,
    )
    assert entry.before == [] and entry.after == [
        {"user_id": None, "max_running_jobs": 1, "max_gpus": None},
        {"user_id": str(user), "max_running_jobs": None, "max_gpus": 2},
    ]
    got = await handle(cmds.GetUserCaps(caller), _deps(repo))
    assert got.caps == done.caps


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_members_and_viewers_cannot_touch_caps(role: str):
    repo = FakeRepo()
    for cmd in (
        cmds.SetUserCaps(_caller(role), (("", 1, None),)),
        cmds.GetUserCaps(_caller(role)),
        cmds.ListOrganizationAudit(_caller(role)),
    ):
        with pytest.raises(PermissionDenied):
            await handle(cmd, _deps(repo))
    assert repo.tables.audit == []


async def test_an_organization_reads_only_its_own_audit_entries_in_pages():
    repo = FakeRepo()
    deps = _deps(repo)
    for n in range(3):
        await handle(cmds.SetQuota(str(ORG), "h100-80gb", n), deps)
    await handle(cmds.SetQuota(str(OTHER), "h100-80gb", 5), deps)
    await handle(cmds.SetHalfLife(3600.0), deps)
    page = await handle(cmds.ListOrganizationAudit(_caller(), limit=2), deps)
    assert [e.after["nominal"] for e in page.entries] == [2, 1] and page.next_before_id == page.entries[-1].id
    rest = await handle(cmds.ListOrganizationAudit(_caller(), limit=2, before_id=page.next_before_id), deps)
    assert [e.after["nominal"] for e in rest.entries] == [0] and rest.next_before_id == 0
    everything = await handle(cmds.ListAudit(), deps)
    assert len(everything.entries) == 5
    with pytest.raises(InvalidArgument):
        await handle(cmds.ListAudit(limit=10_000), deps)


# ----------------------------------------------------------------------------- the store


async def test_the_store_seeds_settings_once_then_reads_only_when_the_version_moves():
    repo = FakeRepo()
    configured = Policy(quotas={(ORG, "h100-80gb"): Quota(2, 1, None)}, half_life_s=7200.0)
    store = PolicyStore(repo, configured, refresh_s=3600)
    policy = await store.refresh()
    assert policy.quotas == {(ORG, "h100-80gb"): Quota(2, 1, None)} and policy.half_life_s == 7200.0
    assert repo.tables.seeded and [e.method for e in repo.tables.audit] == ["settings.seed"]
    units = len(repo.units)
    assert await store.refresh() is policy and len(repo.units) == units  # not due: no read at all

    # A second replica (its own store) does not seed again, and sees the first's changes.
    other = PolicyStore(repo, Policy(), refresh_s=0)
    await handle(cmds.SetQuota(str(ORG), "h100-80gb", 0, 0), _deps(repo, store))
    assert (await other.refresh()).quotas == {(ORG, "h100-80gb"): Quota(0, 0, None)}
    assert [e.method for e in repo.tables.audit].count("settings.seed") == 1
    # The store of the process that made the change reads it at once, whatever its interval.
    assert (await store.refresh()).quotas == {(ORG, "h100-80gb"): Quota(0, 0, None)}
    assert store.version == repo.tables.policy.version


async def test_a_store_that_is_due_but_unchanged_reads_only_the_version():
    repo = FakeRepo()
    store = PolicyStore(repo, Policy(), refresh_s=0)
    await store.refresh()
    before = len(repo.units)
    await store.refresh()
    assert len(repo.units) == before + 1 and repo.units[-1].reads == 1


# ----------------------------------------------------------------------------- the loop


async def test_the_loop_applies_a_cap_on_its_next_step_and_a_new_half_life_rebuilds_its_state():
    from services.scheduler.service_layer import handlers
    from services.scheduler.service_layer.scheduling import Scheduler

    from .fakes import fake_dependencies
    from .test_handlers import add_gpus, inventory_gpu, submit

    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    repo = FakeRepo()
    store = PolicyStore(repo, deps.options.policy, refresh_s=3600)
    leader = Scheduler(deps, "leader", policies=store)
    await leader.step()
    user = uuid4()
    await handle(cmds.SetUserCaps(_caller("owner"), (("", 1, None),)), _deps(repo, store))
    first = await handlers.submit_job(submit(ORG, user_id=user), deps)
    second = await handlers.submit_job(submit(ORG, user_id=user), deps)
    report = await leader.step()
    assert report is not None and [j.id for j in report.placed] == [first.id]
    waiting = uow.store.jobs[second.id]
    assert waiting.pending is not None and waiting.pending.code == "user_cap"
    assert leader.policy.user_cap(ORG, user) == UserCap(1, None)

    state = leader.state
    await handle(cmds.SetQuota(str(OTHER), "h100-80gb", 1), _deps(repo, store))
    await leader.step()
    assert leader.state is state  # quotas apply to the snapshot as it is
    await handle(cmds.SetHalfLife(3600.0), _deps(repo, store))
    await leader.step()
    assert leader.state is not state and leader.policy.half_life_s == 3600.0  # usage re-decayed
