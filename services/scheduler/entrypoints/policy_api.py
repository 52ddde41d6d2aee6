"""gRPC servicer of PolicyService (proto/gpufleet/v1/policy.proto): wire <-> policy commands.

Operator methods require the operator token (``Authenticator.operator``); the organization-admin
methods an API key whose scopes allow the method (``shared.scopes``: ``admin``), and the handlers
the owner or admin role."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Protocol
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, policy_pb2, policy_pb2_grpc

from shared.errors import FailedPrecondition, PermissionDenied
from shared.grpc import grpc_service, tenant_of
from shared.wire import ts

from ..adapters.allocations_read import FleetAllocationReader
from ..domain.engine import Quota
from ..domain.limits import Limits, LimitsPolicy
from ..domain.policy_admin import AuditEntry, ProjectPolicyEntry, StoredPolicy, UserCapEntry, named_operator
from ..service_layer import limits
from ..service_layer import policy as cmds
from ..service_layer.limits import LimitsDependencies
from ..service_layer.policy import (
    AuditPage,
    OrganizationCaps,
    OrganizationProjectPolicies,
    PolicyDependencies,
    handle,
)

SERVICE_NAME = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name


class PolicyAuth(Protocol):
    """shared.grpc.Authenticator in production."""

    async def operator(self, context: grpc.aio.ServicerContext) -> common_pb2.Principal: ...

    async def principal(
        self, context: grpc.aio.ServicerContext, *, write: bool = False
    ) -> common_pb2.Principal: ...


def _opt(message: object, name: str) -> int | None:
    return getattr(message, name) if message.HasField(name) else None  # type: ignore[attr-defined]


def quota_message(org: UUID, gpu_type: str, q: Quota) -> policy_pb2.Quota:
    return policy_pb2.Quota(
        organization_id=str(org),
        gpu_type=gpu_type,
        nominal=q.nominal,
        borrowing_limit=q.borrowing_limit,
        lending_limit=q.lending_limit,
    )


def _cap(e: UserCapEntry) -> policy_pb2.UserCap:
    return policy_pb2.UserCap(
        user_id=str(e.user) if e.user else "",
        max_running_jobs=e.cap.max_running_jobs,
        max_gpus=e.cap.max_gpus,
    )


def caps_message(org: UUID, caps: tuple[UserCapEntry, ...]) -> policy_pb2.UserCaps:
    return policy_pb2.UserCaps(organization_id=str(org), caps=[_cap(e) for e in caps])


def project_policies_message(
    org: UUID, entries: tuple[ProjectPolicyEntry, ...]
) -> policy_pb2.ProjectPolicies:
    return policy_pb2.ProjectPolicies(
        organization_id=str(org),
        policies=[
            policy_pb2.ProjectPolicy(
                project_id=str(e.project),
                weight=e.weight,
                max_running_jobs=e.cap.max_running_jobs,
                max_gpus=e.cap.max_gpus,
            )
            for e in entries
        ],
    )


def policy_message(p: StoredPolicy) -> policy_pb2.Policy:
    return policy_pb2.Policy(
        version=p.version,
        half_life_seconds=p.half_life_s,
        dedicated_lending_limit=p.dedicated_lending_limit,
        fair_shares=[
            policy_pb2.FairShare(organization_id=str(o), weight=w)
            for o, w in sorted(p.fair_shares.items(), key=lambda i: i[0].int)
        ],
        gpu_type_weights=[
            policy_pb2.GpuTypeWeight(gpu_type=t, weight=w) for t, w in sorted(p.gpu_type_weights.items())
        ],
        quotas=[
            quota_message(o, t, q)
            for (o, t), q in sorted(p.quotas.items(), key=lambda i: (i[0][0].int, i[0][1]))
        ],
        user_caps=[caps_message(o, e) for o, e in sorted(p.user_caps.items(), key=lambda i: i[0].int)],
        project_policies=[
            project_policies_message(o, e)
            for o, e in sorted(p.project_policies.items(), key=lambda i: i[0].int)
        ],
        reclaim_lent_capacity=p.reclaim_lent_capacity,
        preemption_grace_seconds=p.preemption_grace_s,
    )


def _entry(e: AuditEntry, operator_names: bool = True) -> policy_pb2.AuditEntry:
    a = e.actor
    return policy_pb2.AuditEntry(
        id=e.id,
        at=ts(e.at),
        actor=a.kind,
        organization_id=str(e.organization_id) if e.organization_id else "",
        actor_user_id=str(a.user_id) if a.user_id and not a.operator else "",
        actor_api_key_id=str(a.api_key_id) if a.api_key_id and not a.operator else "",
        method=e.method,
        before_json=json.dumps(e.before, sort_keys=True),
        after_json=json.dumps(e.after, sort_keys=True),
        operator_name=(a.name or "") if a.operator and operator_names else "",
    )


def audit_message(page: AuditPage, *, operator_names: bool = True) -> policy_pb2.ListAuditResponse:
    """``operator_names``: False for an organization's own view (which operator is operators' business)."""
    return policy_pb2.ListAuditResponse(
        entries=[_entry(e, operator_names) for e in page.entries], next_before_id=page.next_before_id
    )


def _org_writer(principal: common_pb2.Principal) -> common_pb2.Principal:
    """An organization-wide setting (user caps, project policies) is changed only with a key that acts
    for the whole organization: a project-bound key's reach ends at its project (docs/projects.md)."""
    if principal.project_id:
        raise PermissionDenied(
            "this API key is bound to a project; organization-wide settings need a key that is not"
        )
    return principal


def _caller(principal: common_pb2.Principal) -> cmds.Caller:
    def opt_uuid(raw: str) -> UUID | None:
        try:
            return UUID(raw) if raw else None
        except ValueError:
            return None

    return cmds.Caller(
        organization_id=tenant_of(principal),
        user_id=opt_uuid(principal.user_id),
        api_key_id=opt_uuid(principal.api_key_id),
        role=principal.role,
    )


@grpc_service
class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(
        self,
        deps: PolicyDependencies,
        auth: PolicyAuth,
        allocations: FleetAllocationReader | None = None,
    ) -> None:
        self.deps = deps
        self.auth = auth
        self.allocations = allocations

    async def _policy(self, context: grpc.aio.ServicerContext, cmd: object) -> policy_pb2.Policy:
        by = named_operator((await self.auth.operator(context)).operator_name)
        if hasattr(cmd, "by"):  # the commands that change something record who
            cmd = replace(cmd, by=by)  # type: ignore[type-var]
        stored: StoredPolicy = await handle(cmd, self.deps)
        return policy_message(stored)

    # -- operator -------------------------------------------------------------------------------
    async def GetPolicy(
        self, request: policy_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.GetPolicy())

    async def SetFairShare(
        self, request: policy_pb2.SetFairShareRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetFairShare(request.organization_id, request.weight))

    async def DeleteFairShare(
        self, request: policy_pb2.DeleteFairShareRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetFairShare(request.organization_id, None))

    async def SetHalfLife(
        self, request: policy_pb2.SetHalfLifeRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetHalfLife(request.half_life_seconds))

    async def SetGpuTypeWeight(
        self, request: policy_pb2.SetGpuTypeWeightRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetGpuTypeWeight(request.gpu_type, request.weight))

    async def DeleteGpuTypeWeight(
        self, request: policy_pb2.DeleteGpuTypeWeightRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetGpuTypeWeight(request.gpu_type, None))

    async def SetDedicatedLendingLimit(
        self, request: policy_pb2.SetDedicatedLendingLimitRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.SetDedicatedLendingLimit(request.limit))

    async def SetPreemption(
        self, request: policy_pb2.SetPreemptionRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        reclaim = request.reclaim_lent_capacity if request.HasField("reclaim_lent_capacity") else None
        grace = request.grace_seconds if request.HasField("grace_seconds") else None
        return await self._policy(context, cmds.SetPreemption(reclaim, grace))

    async def SetQuota(
        self, request: policy_pb2.SetQuotaRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Quota:
        by = named_operator((await self.auth.operator(context)).operator_name)
        cmd = cmds.SetQuota(
            request.organization_id,
            request.gpu_type,
            request.nominal,
            _opt(request, "borrowing_limit"),
            _opt(request, "lending_limit"),
            by=by,
        )
        quota: Quota = await handle(cmd, self.deps)
        return quota_message(UUID(request.organization_id), request.gpu_type, quota)

    async def DeleteQuota(
        self, request: policy_pb2.DeleteQuotaRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Policy:
        return await self._policy(context, cmds.DeleteQuota(request.organization_id, request.gpu_type))

    async def ListAudit(
        self, request: policy_pb2.ListAuditRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ListAuditResponse:
        await self.auth.operator(context)
        cmd = cmds.ListAudit(request.organization_id, request.before_id, request.limit)
        return audit_message(await handle(cmd, self.deps))

    # -- organization admins --------------------------------------------------------------------
    async def GetUserCaps(
        self, request: policy_pb2.GetUserCapsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.UserCaps:
        caller = _caller(await self.auth.principal(context))
        found: OrganizationCaps = await handle(cmds.GetUserCaps(caller), self.deps)
        return caps_message(found.organization_id, found.caps)

    async def SetUserCaps(
        self, request: policy_pb2.SetUserCapsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.UserCaps:
        caller = _caller(_org_writer(await self.auth.principal(context, write=True)))
        entries = tuple((c.user_id, _opt(c, "max_running_jobs"), _opt(c, "max_gpus")) for c in request.caps)
        done: OrganizationCaps = await handle(cmds.SetUserCaps(caller, entries), self.deps)
        return caps_message(done.organization_id, done.caps)

    async def ListOrganizationAudit(
        self, request: policy_pb2.ListAuditRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ListAuditResponse:
        caller = _caller(await self.auth.principal(context))
        cmd = cmds.ListOrganizationAudit(caller, request.before_id, request.limit)
        return audit_message(await handle(cmd, self.deps), operator_names=False)

    async def GetProjectPolicies(
        self, request: policy_pb2.GetProjectPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ProjectPolicies:
        caller = _caller(await self.auth.principal(context))
        found: OrganizationProjectPolicies = await handle(cmds.GetProjectPolicies(caller), self.deps)
        return project_policies_message(found.organization_id, found.policies)

    async def SetProjectPolicies(
        self, request: policy_pb2.SetProjectPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ProjectPolicies:
        caller = _caller(_org_writer(await self.auth.principal(context, write=True)))
        entries = tuple(
            (p.project_id, _opt_float(p, "weight"), _opt(p, "max_running_jobs"), _opt(p, "max_gpus"))
            for p in request.policies
        )
        done: OrganizationProjectPolicies = await handle(cmds.SetProjectPolicies(caller, entries), self.deps)
        return project_policies_message(done.organization_id, done.policies)

    # -- abuse limits (operator; service_layer/limits.py, docs/limits.md) -----------------------
    def _limits_deps(self) -> LimitsDependencies:
        if self.deps.limits is None:
            raise FailedPrecondition("abuse limits are not served by this process")
        return self.deps.limits

    async def ListPlans(
        self, request: policy_pb2.ListPlansRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Plans:
        await self.auth.operator(context)
        return plans_message(await limits.handle(limits.ListPlans(), self._limits_deps()))

    async def SetPlan(
        self, request: policy_pb2.SetPlanRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Plan:
        await self.auth.operator(context)
        q, r, b = limits_of_message(request.limits)
        name, value = await limits.handle(limits.SetPlan(request.name, q, r, b), self._limits_deps())
        return policy_pb2.Plan(name=name, limits=limits_message(value))

    async def SetDefaultPlan(
        self, request: policy_pb2.SetDefaultPlanRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.Plans:
        await self.auth.operator(context)
        return plans_message(await limits.handle(limits.SetDefaultPlan(request.plan), self._limits_deps()))

    async def GetOrganizationLimits(
        self, request: policy_pb2.GetOrganizationLimitsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.OrganizationLimits:
        await self.auth.operator(context)
        cmd = limits.GetOrganizationLimits(request.organization_id)
        return organization_limits_message(await limits.handle(cmd, self._limits_deps()))

    async def SetOrganizationLimits(
        self, request: policy_pb2.SetOrganizationLimitsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.OrganizationLimits:
        await self.auth.operator(context)
        q, r, b = limits_of_message(request.overrides)
        cmd = limits.SetOrganizationLimits(request.organization_id, request.plan, q, r, b)
        return organization_limits_message(await limits.handle(cmd, self._limits_deps()))

    async def DeleteOrganizationLimits(
        self, request: policy_pb2.DeleteOrganizationLimitsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.OrganizationLimits:
        await self.auth.operator(context)
        cmd = limits.DeleteOrganizationLimits(request.organization_id)
        return organization_limits_message(await limits.handle(cmd, self._limits_deps()))

    # -- the operator's whole-fleet view (a read with no decision: straight to its query) ---------
    async def ListAllAllocations(
        self, request: policy_pb2.ListAllAllocationsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ListAllAllocationsResponse:
        await self.auth.operator(context)
        if self.allocations is None:
            raise FailedPrecondition("allocations are not served by this process")
        held = await self.allocations.all_held_gpus()
        return policy_pb2.ListAllAllocationsResponse(
            allocations=[
                policy_pb2.HeldGpu(
                    gpu_id=str(h.gpu_id),
                    node_id=str(h.node_id),
                    job_id=str(h.job_id),
                    organization_id=str(h.organization_id),
                )
                for h in held
            ]
        )


# ----------------------------------------------------------------------------- abuse limits (wire)


def limits_of_message(m: policy_pb2.Limits) -> tuple[int | None, float | None, int | None]:
    return _opt(m, "max_queued_jobs"), _opt_float(m, "submit_rate"), _opt(m, "submit_burst")


def _opt_float(message: object, name: str) -> float | None:
    return getattr(message, name) if message.HasField(name) else None  # type: ignore[attr-defined]


def limits_message(value: Limits) -> policy_pb2.Limits:
    return policy_pb2.Limits(
        max_queued_jobs=value.max_queued_jobs,
        submit_rate=value.submit_rate,
        submit_burst=value.submit_burst,
    )


def plans_message(p: LimitsPolicy) -> policy_pb2.Plans:
    return policy_pb2.Plans(
        plans=[policy_pb2.Plan(name=n, limits=limits_message(v)) for n, v in sorted(p.plans.items())],
        default_plan=p.default_plan or "",
    )


def organization_limits_message(found: limits.OrganizationLimits) -> policy_pb2.OrganizationLimits:
    setting = found.setting
    return policy_pb2.OrganizationLimits(
        organization_id=str(found.organization_id),
        set=setting is not None,
        plan=(setting.plan or "") if setting is not None else "",
        overrides=limits_message(setting.overrides if setting is not None else Limits()),
        effective_plan=found.effective.plan or "",
        effective=limits_message(found.effective.limits),
    )
