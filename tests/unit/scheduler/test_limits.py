"""Abuse limits without I/O: the token bucket, plan resolution and validation, the limiter at submit
(rate first, then the queued-jobs cap, per organization) and the operator's handlers over fakes."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from services.scheduler.domain import limits as rules
from services.scheduler.domain.limits import Limits, LimitsPolicy, OrganizationSetting, TokenBucket
from services.scheduler.domain.model import JobStatus
from services.scheduler.service_layer import handlers
from services.scheduler.service_layer import limits as svc
from services.scheduler.service_layer.limits import LimitsStore, SubmitLimiter
from shared.contracts import limits as contract
from shared.errors import (
    ErrorCode,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)

from .fakes import fake_dependencies
from .test_handlers import submit

FREE = Limits(10, 1.0, 5)


# ----------------------------------------------------------------------------- token bucket


def test_a_bucket_starts_full_and_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token comes every half second
    assert bucket.remaining(100.0) == 0
    assert bucket.take(100.25) == pytest.approx(0.25)  # a refusal takes nothing
    assert bucket.take(100.5) == 0.0
    assert bucket.remaining(110.0) == 3  # never more than the burst
    assert bucket.full(110.0)


def test_reconfiguring_keeps_the_tokens_and_adds_what_a_larger_burst_adds():
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    for _ in range(8):
        bucket.take(0.0)
    bucket.reconfigure(rate=1.0, burst=3, now=0.0)  # lowered: at most the new burst
    assert bucket.remaining(0.0) == 2
    bucket.take(0.0)
    bucket.take(0.0)
    bucket.reconfigure(rate=4.0, burst=20, now=0.0)  # raised: the 17 more apply at once
    assert bucket.remaining(0.0) == 17 and bucket.reset_after(0.0) == pytest.approx(3 / 4)


# ----------------------------------------------------------------------------- plans


def test_an_organization_gets_its_plan_with_its_overrides_on_top():
    org, other, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    policy = LimitsPolicy(
        plans={"free": FREE, "pro": Limits(1000, 20.0, 100), "enterprise": Limits()},
        default_plan="free",
        organizations={
            org: OrganizationSetting(org, "pro", Limits(max_queued_jobs=5)),
            other: OrganizationSetting(other, None, Limits(submit_rate=0.5, submit_burst=2)),
        },
    )
    assert policy.limits_of(org) == rules.Effective("pro", Limits(5, 20.0, 100))
    assert policy.limits_of(other) == rules.Effective("free", Limits(10, 0.5, 2))  # the default plan
    assert policy.limits_of(third) == rules.Effective("free", FREE)
    assert dataclasses.replace(policy, default_plan=None).limits_of(third) == rules.Effective(None, Limits())


def test_the_window_of_a_bucket_is_the_time_it_takes_to_fill():
    assert Limits(None, 1.0, 5).window_s == 5
    assert Limits(None, 20.0, 100).window_s == 5
    assert Limits(None, 3.0, 10).window_s == 4  # rounded up
    assert Limits(None, 100.0, 1).window_s == 1  # at least a second
    assert Limits(10).window_s is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, None, None), "max_queued_jobs"),
        ((contract.LIMITS_MAX_QUEUED_JOBS + 1, None, None), "max_queued_jobs"),
        ((None, 1.0, None), "submit_burst"),
        ((None, None, 5), "submit_rate"),
        ((None, 0.0, 5), "submit_rate"),
        ((None, math.inf, 5), "submit_rate"),
        ((None, contract.LIMITS_MAX_SUBMIT_RATE * 2, 5), "submit_rate"),
        ((None, 1.0, 0), "submit_burst"),
    ],
)
def test_bad_limits_name_their_field(args, field):
    with pytest.raises(InvalidArgument) as err:
        rules.limits(*args)
    assert err.value.field == field


def test_plan_names_are_short_lowercase_words():
    assert rules.plan_name("professional") == "professional"
    for bad in ("", "Free", "1st", "a" * 33, "free plan"):
        with pytest.raises(InvalidArgument):
            rules.plan_name(bad)


def test_the_default_tiers_are_seed_002s():
    assert list(contract.DEFAULT_PLANS) == ["free", "individual", "professional", "enterprise"]
    for queued, rate, burst in contract.DEFAULT_PLANS.values():
        rules.limits(queued, rate, burst)  # each is a valid plan


# ----------------------------------------------------------------------------- the limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FixedStore(LimitsStore):
    """The limits as given (no repository): what a refreshed store would hold."""

    def __init__(self, policy: LimitsPolicy) -> None:
        self.current = policy

    async def refresh(self) -> LimitsPolicy:
        return self.current


class Queued:
    """Queued jobs per organization as the database would count them; counts what it was asked."""

    def __init__(self) -> None:
        self.jobs: dict[uuid.UUID, int] = {}
        self.counts: list[uuid.UUID] = []

    async def count(self, org: uuid.UUID) -> int:
        self.counts.append(org)
        return self.jobs.get(org, 0)


def limiter(policy: LimitsPolicy, queued: Queued | None = None) -> tuple[SubmitLimiter, Clock, Queued]:
    clock, queued = Clock(), queued or Queued()
    return (
        SubmitLimiter(FixedStore(policy), queued, clock=clock, recount_s=2.0, min_recount_s=0.25),
        clock,
        queued,
    )


def on_plan(org: uuid.UUID, value: Limits) -> LimitsPolicy:
    return LimitsPolicy(plans={"tiny": value}, organizations={org: OrganizationSetting(org, "tiny")})


async def test_beyond_the_burst_a_submit_is_refused_with_when_to_retry():
    org = uuid.uuid4()
    lim, clock, _ = limiter(on_plan(org, Limits(None, 2.0, 3)))
    for _ in range(3):
        (await lim.admit(org)).committed()
    with pytest.raises(ResourceExhausted) as err:
        await lim.admit(org)
    e = err.value
    assert e.code is ErrorCode.RESOURCE_EXHAUSTED
    assert (e.limit, e.quota, e.remaining, e.window_s) == ("submits", 3, 0, 2)
    assert e.retry_after_s == pytest.approx(0.5)
    assert "2 jobs a second" in e.message and "tiny plan" in e.message
    assert dict(e.trailers()) == {
        "retry-after-ms": "500",
        "gpufleet-limit": "submits",
        "gpufleet-limit-quota": "3",
        "gpufleet-limit-remaining": "0",
        "gpufleet-limit-window": "2",
    }
    clock.now += 0.5
    (await lim.admit(org)).committed()


async def test_a_full_queue_is_refused_after_a_fresh_count_and_frees_when_jobs_leave_it():
    org = uuid.uuid4()
    lim, clock, queued = limiter(on_plan(org, Limits(max_queued_jobs=3)))
    queued.jobs[org] = 1
    a, b = await lim.admit(org), await lim.admit(org)  # one count, then what was admitted is added
    assert queued.counts == [org]
    a.committed()
    b.committed()
    with pytest.raises(ResourceExhausted) as err:
        await lim.admit(org)
    assert (err.value.limit, err.value.quota, err.value.window_s) == ("queued_jobs", 3, None)
    assert err.value.retry_after_s == contract.QUEUE_FULL_RETRY_AFTER_SECONDS
    assert "cap of 3 queued jobs" in err.value.message

    queued.jobs[org] = 3  # the database has the two committed ones too
    with pytest.raises(ResourceExhausted):
        await lim.admit(org)  # counted again at most every min_recount_s
    counts = len(queued.counts)
    clock.now += 0.3
    queued.jobs[org] = 1  # two were scheduled meanwhile
    await lim.admit(org)
    assert len(queued.counts) == counts + 1


async def test_concurrent_submits_in_flight_count_against_the_cap():
    org = uuid.uuid4()
    lim, _, _ = limiter(on_plan(org, Limits(max_queued_jobs=2)))
    first, _second = await lim.admit(org), await lim.admit(org)  # neither committed yet
    with pytest.raises(ResourceExhausted):
        await lim.admit(org)
    first.released()  # its submit failed: no job came of it
    await lim.admit(org)


async def test_a_queue_refusal_still_spends_the_token_and_the_rate_is_checked_first():
    org = uuid.uuid4()
    lim, _, queued = limiter(on_plan(org, Limits(0, 1.0, 2)))
    with pytest.raises(ResourceExhausted) as err:
        await lim.admit(org)
    assert err.value.limit == "queued_jobs"
    with pytest.raises(ResourceExhausted):
        await lim.admit(org)
    counts = len(queued.counts)
    with pytest.raises(ResourceExhausted) as err:
        await lim.admit(org)
    assert err.value.limit == "submits" and len(queued.counts) == counts  # no database for this one


async def test_a_limited_organization_leaves_another_untouched():
    limited, other = uuid.uuid4(), uuid.uuid4()
    policy = LimitsPolicy(
        plans={"tiny": Limits(1, 1.0, 1), "free": FREE},
        default_plan="free",
        organizations={limited: OrganizationSetting(limited, "tiny")},
    )
    lim, _, queued = limiter(policy)
    (await lim.admit(limited)).committed()
    for _ in range(20):
        with pytest.raises(ResourceExhausted):
            await lim.admit(limited)
    for _ in range(5):  # the free plan's whole burst, as if the other had never been refused
        (await lim.admit(other)).committed()
    assert queued.counts.count(other) == 1


async def test_no_plan_and_no_default_means_no_limits_and_no_counting():
    org = uuid.uuid4()
    lim, _, queued = limiter(LimitsPolicy())
    for _ in range(1000):
        (await lim.admit(org)).committed()
    assert queued.counts == []


async def test_a_changed_plan_applies_to_the_next_submit():
    org = uuid.uuid4()
    store = FixedStore(on_plan(org, Limits(None, 1.0, 1)))
    lim = SubmitLimiter(store, Queued(), clock=Clock())
    await lim.admit(org)
    with pytest.raises(ResourceExhausted):
        await lim.admit(org)
    store.current = on_plan(org, Limits(None, 100.0, 100))  # raised: applies at once, not after a refill
    for _ in range(99):
        await lim.admit(org)
    store.current = on_plan(org, Limits())
    await lim.admit(org)


# ----------------------------------------------------------------------------- submit_job with limits


async def test_submit_job_refused_by_a_limit_writes_nothing_and_replays_do_not_fill_the_queue():
    deps, uow, _ = fake_dependencies()
    org = uuid.uuid4()

    class StoreQueued(Queued):
        async def count(self, o: uuid.UUID) -> int:
            jobs = uow.store.jobs.values()
            return sum(1 for j in jobs if j.organization_id == o and j.status is JobStatus.QUEUED)

    lim = SubmitLimiter(FixedStore(on_plan(org, Limits(max_queued_jobs=3))), StoreQueued(), clock=Clock())
    deps = dataclasses.replace(deps, limits=lim)
    first = await handlers.submit_job(submit(org, idempotency_key="k1"), deps)
    again = await handlers.submit_job(submit(org, idempotency_key="k1"), deps)  # the same job
    assert again.id == first.id
    await handlers.submit_job(submit(org), deps)
    with pytest.raises(InvalidArgument):  # refused after it was let through: its place is given back
        await handlers.submit_job(submit(org, gpu_type="no-such-type"), deps)
    await handlers.submit_job(submit(org), deps)
    with pytest.raises(ResourceExhausted):
        await handlers.submit_job(submit(org), deps)
    assert len(uow.store.jobs) == 3


# ----------------------------------------------------------------------------- operator handlers


class FakeLimitsUnit:
    def __init__(self, tables: dict[str, Any]) -> None:
        self.t = tables

    async def version(self) -> int:
        return int(self.t["version"])

    async def bump_version(self) -> int:
        self.t["version"] += 1
        return int(self.t["version"])

    async def load_limits(self) -> LimitsPolicy:
        return LimitsPolicy(
            dict(self.t["plans"]), self.t["default"], dict(self.t["orgs"]), version=self.t["version"]
        )

    async def plan(self, name: str) -> Limits | None:
        return self.t["plans"].get(name)

    async def default_plan(self) -> str | None:
        return self.t["default"]

    async def organization_setting(self, org: uuid.UUID) -> OrganizationSetting | None:
        return self.t["orgs"].get(org)

    async def set_plan(self, name: str, value: Limits) -> None:
        self.t["plans"][name] = value

    async def set_default_plan(self, name: str | None) -> None:
        self.t["default"] = name

    async def set_organization_setting(self, org: uuid.UUID, setting: OrganizationSetting | None) -> None:
        if setting is None:
            self.t["orgs"].pop(org, None)
        else:
            self.t["orgs"][org] = setting

    async def audit(self, entry: Any) -> None:
        self.t["audit"].append(entry)


class FakeLimitsRepo:
    def __init__(self) -> None:
        plans = {n: Limits(*v) for n, v in contract.DEFAULT_PLANS.items()}
        self.tables: dict[str, Any] = {"version": 0, "plans": plans, "default": None, "orgs": {}, "audit": []}

    @asynccontextmanager
    async def __call__(self, *, org_id: uuid.UUID | None = None, system: bool = False) -> AsyncIterator[Any]:
        assert system, "operator calls run in the system scope"
        yield FakeLimitsUnit(self.tables)


async def test_operator_changes_are_audited_and_apply_through_the_store():
    repo = FakeLimitsRepo()
    store = LimitsStore(repo, refresh_s=3600)
    deps = svc.LimitsDependencies(repo, store)
    org = uuid.uuid4()
    assert (await store.refresh()).limits_of(org).plan is None

    await svc.handle(svc.SetDefaultPlan("free"), deps)
    assert (await store.refresh()).limits_of(org).limits == FREE  # invalidated: read at once
    found = await svc.handle(svc.SetOrganizationLimits(str(org), "professional", max_queued_jobs=7), deps)
    assert found.effective == rules.Effective("professional", Limits(7, 20.0, 100))
    assert found.setting == OrganizationSetting(org, "professional", Limits(max_queued_jobs=7))
    name, value = await svc.handle(svc.SetPlan("tiny", 1, 0.5, 1), deps)
    assert (name, value) == ("tiny", Limits(1, 0.5, 1))
    await svc.handle(svc.DeleteOrganizationLimits(str(org)), deps)
    assert (await store.refresh()).limits_of(org).plan == "free"

    methods = [e.method for e in repo.tables["audit"]]
    assert methods == [
        "PolicyService/SetDefaultPlan",
        "PolicyService/SetOrganizationLimits",
        "PolicyService/SetPlan",
        "PolicyService/DeleteOrganizationLimits",
    ]
    set_org = repo.tables["audit"][1]
    assert set_org.organization_id == org and set_org.before is None
    assert set_org.after == {
        "plan": "professional",
        "max_queued_jobs": 7,
        "submit_rate": None,
        "submit_burst": None,
    }
    assert repo.tables["audit"][3].after is None and repo.tables["version"] == 4


async def test_operator_refusals_write_nothing():
    repo = FakeLimitsRepo()
    deps = svc.LimitsDependencies(repo)
    org = str(uuid.uuid4())
    with pytest.raises(InvalidArgument) as err:
        await svc.handle(svc.SetOrganizationLimits(org, "platinum"), deps)
    assert err.value.field == "plan"
    with pytest.raises(InvalidArgument) as err:
        await svc.handle(svc.SetOrganizationLimits(org, "", submit_rate=1.0), deps)
    assert err.value.field == "submit_burst"
    with pytest.raises(InvalidArgument):
        await svc.handle(svc.SetOrganizationLimits("not-a-uuid"), deps)
    with pytest.raises(InvalidArgument):
        await svc.handle(svc.SetDefaultPlan("platinum"), deps)
    with pytest.raises(NotFound):
        await svc.handle(svc.DeleteOrganizationLimits(org), deps)
    assert repo.tables["audit"] == [] and repo.tables["orgs"] == {}
