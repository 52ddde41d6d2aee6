"""Abuse limits on the real schema over gRPC: the operator's plans and organization limits (audited,
operator only, row-level security), and JobService/SubmitJob refusing beyond the queued-jobs cap and
beyond the submit rate with RESOURCE_EXHAUSTED and its retry trailers, while another organization
submits as before."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from gpufleet.v1 import common_pb2, policy_pb2, policy_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from sqlalchemy import text

from services.scheduler.adapters.allocations_read import SqlAllocationReader
from services.scheduler.adapters.limits_repository import SqlLimitsRepository, SqlQueuedJobs
from services.scheduler.adapters.policy_repository import SqlPolicyRepository
from services.scheduler.domain.engine import Policy
from services.scheduler.entrypoints.allocations import JobServicerWithAllocations
from services.scheduler.entrypoints.policy_api import PolicyServicer
from services.scheduler.service_layer.limits import LimitsDependencies, LimitsStore, SubmitLimiter
from services.scheduler.service_layer.policy import PolicyDependencies, PolicyStore
from shared.contracts import limits as contract
from shared.grpc import Authenticator, channel

from .conftest import Harness

OPERATOR = "operator-token-for-limit-tests"
OP = (("authorization", f"Bearer {OPERATOR}"),)


@dataclass
class Api:
    h: Harness
    policy: policy_pb2_grpc.PolicyServiceStub
    jobs: scheduler_pb2_grpc.JobServiceStub

    async def tenant(self) -> tuple[uuid.UUID, tuple[tuple[str, str], ...]]:
        """A fresh organization with a GPU of its own (so its jobs fit) and an owner's key."""
        org, key = self.h.tenant("owner")
        await self.h.add_gpus(org, uuid.uuid4(), 1)
        return org, key

    async def submit(self, key: tuple[tuple[str, str], ...]) -> scheduler_pb2.Job:
        # Held: nothing schedules them, they stay queued (no scheduling loop runs here anyway).
        return await self.jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(command="sleep 1", gpu_count=1, hold=True), metadata=key
        )

    async def refused(self, key: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.submit(key)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        return err.value

    async def tiny_plan(self, org: uuid.UUID, **limits: float) -> str:
        name = f"t{uuid.uuid4().hex[:10]}"
        await self.policy.SetPlan(
            policy_pb2.SetPlanRequest(name=name, limits=policy_pb2.Limits(**limits)), metadata=OP
        )
        await self.policy.SetOrganizationLimits(
            policy_pb2.SetOrganizationLimitsRequest(organization_id=str(org), plan=name), metadata=OP
        )
        return name


def trailers(err: grpc.aio.AioRpcError) -> dict[str, str]:
    return {k: v for k, v in err.trailing_metadata() or ()}


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    harness.identity.keys[OPERATOR] = common_pb2.Principal(operator=True)
    store = LimitsStore(SqlLimitsRepository(harness.db), refresh_s=3600)  # told of every change made here
    # A recount at every refusal (no minimum interval): deterministic, no waiting in the tests.
    limiter = SubmitLimiter(store, SqlQueuedJobs(harness.db), recount_s=3600, min_recount_s=0)
    deps = dataclasses.replace(harness.deps, limits=limiter)
    repo = SqlPolicyRepository(harness.db)
    policy_deps = PolicyDependencies(
        repo, PolicyStore(repo, Policy(), refresh_s=3600), deps.wakeup, LimitsDependencies(store.repo, store)
    )
    auth = Authenticator(harness.fleet_target, ttl=0)
    server = grpc.aio.server()
    policy_pb2_grpc.add_PolicyServiceServicer_to_server(PolicyServicer(policy_deps, auth), server)
    scheduler_pb2_grpc.add_JobServiceServicer_to_server(
        JobServicerWithAllocations(deps, auth, SqlAllocationReader(harness.db)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = channel(f"127.0.0.1:{port}")
    yield Api(harness, policy_pb2_grpc.PolicyServiceStub(client), scheduler_pb2_grpc.JobServiceStub(client))
    await client.close()
    await server.stop(None)
    await auth.close()


async def test_a_fresh_database_holds_seed_002s_tiers_and_no_default_plan(api: Api):
    plans = await api.policy.ListPlans(policy_pb2.ListPlansRequest(), metadata=OP)
    by_name = {p.name: p.limits for p in plans.plans}
    for name, (queued, rate, burst) in contract.DEFAULT_PLANS.items():
        got = by_name[name]
        assert (
            got.max_queued_jobs if got.HasField("max_queued_jobs") else None,
            got.submit_rate if got.HasField("submit_rate") else None,
            got.submit_burst if got.HasField("submit_burst") else None,
        ) == (queued, rate, burst)
    assert plans.default_plan == ""


async def test_beyond_the_queued_jobs_cap_a_submit_is_refused_and_another_org_is_not(api: Api):
    org, key = await api.tenant()
    _, other_key = await api.tenant()
    plan = await api.tiny_plan(org, max_queued_jobs=2)
    first = await api.submit(key)
    await api.submit(key)
    err = await api.refused(key)
    assert "cap of 2 queued jobs" in (err.details() or "") and plan in (err.details() or "")
    t = trailers(err)
    assert t["gpufleet-limit"] == "queued_jobs" and t["gpufleet-limit-quota"] == "2"
    assert t["retry-after-ms"] == str(contract.QUEUE_FULL_RETRY_AFTER_SECONDS * 1000)
    assert "gpufleet-limit-window" not in t

    for _ in range(5):  # no plan, no default plan: no limits
        await api.submit(other_key)

    await api.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=first.id), metadata=key)
    await api.submit(key)  # the cancelled job left the queue: there is room for one
    await api.refused(key)
    async with api.h.db.transaction(org_id=org) as s:
        queued = (
            await s.execute(
                text("SELECT count(*) FROM jobs WHERE organization_id = :o AND status = 'queued'"), {"o": org}
            )
        ).scalar_one()
    assert queued == 2


async def test_beyond_the_submit_rate_a_submit_is_refused_with_when_to_retry(api: Api):
    org, key = await api.tenant()
    _, other_key = await api.tenant()
    await api.policy.SetOrganizationLimits(
        policy_pb2.SetOrganizationLimitsRequest(
            organization_id=str(org),
            plan="enterprise",  # no limits of its own: the override alone applies
            overrides=policy_pb2.Limits(submit_rate=0.01, submit_burst=3),
        ),
        metadata=OP,
    )
    for _ in range(3):
        await api.submit(key)
    err = await api.refused(key)
    t = trailers(err)
    assert (t["gpufleet-limit"], t["gpufleet-limit-quota"], t["gpufleet-limit-remaining"]) == (
        "submits",
        "3",
        "0",
    )
    assert t["gpufleet-limit-window"] == "300"  # 3 tokens at 0.01 a second
    assert 90_000 < int(t["retry-after-ms"]) <= 100_000  # a token every 100 s
    for _ in range(3):
        await api.submit(other_key)

    found = await api.policy.GetOrganizationLimits(
        policy_pb2.GetOrganizationLimitsRequest(organization_id=str(org)), metadata=OP
    )
    assert found.set and found.plan == found.effective_plan == "enterprise"
    assert (found.effective.submit_rate, found.effective.submit_burst) == (0.01, 3)
    assert not found.effective.HasField("max_queued_jobs")


async def test_limit_changes_are_audited_operator_only_and_invisible_to_other_organizations(api: Api):
    org, key = await api.tenant()
    other, _ = await api.tenant()
    request = policy_pb2.SetOrganizationLimitsRequest(
        organization_id=str(org), plan="free", overrides=policy_pb2.Limits(max_queued_jobs=3)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.policy.SetOrganizationLimits(request, metadata=key)  # an owner's key: not the operator
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await api.policy.SetOrganizationLimits(request, metadata=OP)
    await api.policy.DeleteOrganizationLimits(
        policy_pb2.DeleteOrganizationLimitsRequest(organization_id=str(org)), metadata=OP
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.policy.DeleteOrganizationLimits(
            policy_pb2.DeleteOrganizationLimitsRequest(organization_id=str(org)), metadata=OP
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.policy.SetOrganizationLimits(
            policy_pb2.SetOrganizationLimitsRequest(organization_id=str(org), plan="no-such-plan"),
            metadata=OP,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("gpufleet-error-field", "plan") in tuple(err.value.trailing_metadata() or ())

    audit = await api.policy.ListAudit(policy_pb2.ListAuditRequest(organization_id=str(org)), metadata=OP)
    deleted, made = audit.entries
    assert (made.method, made.actor) == ("PolicyService/SetOrganizationLimits", "operator")
    assert json.loads(made.before_json) is None
    assert json.loads(made.after_json) == {
        "plan": "free",
        "max_queued_jobs": 3,
        "submit_rate": None,
        "submit_burst": None,
    }
    assert (
        deleted.method == "PolicyService/DeleteOrganizationLimits" and json.loads(deleted.after_json) is None
    )

    await api.policy.SetOrganizationLimits(request, metadata=OP)
    # Row-level security: in another organization's scope the row does not exist.
    async with api.h.db.transaction(org_id=other) as s:
        seen = (await s.execute(text("SELECT count(*) FROM policy_organization_limits"))).scalar_one()
    async with api.h.db.transaction(org_id=org) as s:
        own = (
            (await s.execute(text("SELECT organization_id FROM policy_organization_limits"))).scalars().all()
        )
    assert seen == 0 and own == [org]
