"""Scheduling policy (the scheduler's PolicyService; docs/policy.md).

* ``/v1/admin/*``: the operator's calls, with the operator token (``GPUFLEET_ADMIN_TOKEN``) as
  ``Authorization: Bearer <token>``. The gateway does not judge the token: it forwards it and the
  scheduler asks identity (an API key there is 403, anything else unknown 401).
* ``/v1/organization/*``: an organization admin's calls (owner or admin role, a key with the
  ``admin`` scope), for the key's own organization.

Every change is recorded in the audit trail and applied on the scheduler's next cycle.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from gpufleet.v1 import policy_pb2, policy_pb2_grpc

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, downstream
from services.gateway.entrypoints.responses_admin import (
    AuditPageOut,
    DefaultPlanUpdate,
    FairShareUpdate,
    OrganizationLimitsOut,
    OrganizationLimitsUpdate,
    PlanName,
    PlanOut,
    PlansOut,
    PlanUpdate,
    PolicyOut,
    PolicyUpdate,
    QuotaOut,
    QuotaUpdate,
    UserCapsOut,
    UserCapsUpdate,
    audit_out,
    limits_in,
    organization_limits_out,
    plan_out,
    plans_out,
    policy_out,
    quota_out,
    user_caps_out,
)
from services.gateway.entrypoints.responses_project_policy import (
    ProjectPoliciesOut,
    ProjectPoliciesUpdate,
    project_policies_in,
    project_policies_out,
)
from services.gateway.entrypoints.routes import problem_responses
from shared.contracts import limits
from shared.errors import Unauthenticated
from shared.grpc import with_key

router = APIRouter(tags=["policy"])

operator_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="OperatorToken",
    description="`Authorization: Bearer <operator token>` (GPUFLEET_ADMIN_TOKEN); never an API key.",
)


class OperatorCall:
    """The operator's token forwarded as is; the scheduler has identity check it."""

    def __init__(self, down: Downstream, token: str, request: Request) -> None:
        self.stub = policy_stub(down)
        request_id = str(request.scope.get("state", {}).get("request_id", ""))
        self.call: dict[str, Any] = {
            "metadata": (*with_key(token), ("x-request-id", request_id)),
            "timeout": down.call_timeout,
        }


def policy_stub(down: Downstream) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(down.channels["scheduler"])


async def operator_call(
    request: Request,
    down: Annotated[Downstream, Depends(downstream)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(operator_scheme)],
) -> OperatorCall:
    if bearer is None or not bearer.credentials:
        raise Unauthenticated("the operator token is required (Authorization: Bearer <token>)")
    return OperatorCall(down, bearer.credentials, request)


OperatorDep = Annotated[OperatorCall, Depends(operator_call)]
OrgId = Annotated[str, Path(description="The organization (any UUID: the scheduler does not know names).")]
GpuType = Annotated[str, Path(description="A GPU type name as fleet's catalog spells it.")]
_OPERATOR_ERRORS = problem_responses(404, 422)


# ----------------------------------------------------------------------------- operator


@router.get(
    "/v1/admin/policy",
    response_model=PolicyOut,
    responses=problem_responses(),
    summary="The scheduling policy in force (operator)",
)
async def get_policy(op: OperatorDep) -> PolicyOut:
    return policy_out(await op.stub.GetPolicy(policy_pb2.GetPolicyRequest(), **op.call))


@router.put(
    "/v1/admin/policy",
    response_model=PolicyOut,
    responses=_OPERATOR_ERRORS,
    summary="Change the half-life, the dedicated lending limit, GPU-type weights or preemption (operator)",
)
async def put_policy(body: PolicyUpdate, op: OperatorDep) -> PolicyOut:
    reply = None
    if body.half_life_seconds is not None:
        reply = await op.stub.SetHalfLife(
            policy_pb2.SetHalfLifeRequest(half_life_seconds=body.half_life_seconds), **op.call
        )
    if body.dedicated_lending_limit is not None:
        reply = await op.stub.SetDedicatedLendingLimit(
            policy_pb2.SetDedicatedLendingLimitRequest(limit=body.dedicated_lending_limit), **op.call
        )
    for gpu_type, weight in sorted((body.gpu_type_weights or {}).items()):
        if weight is None:
            reply = await op.stub.DeleteGpuTypeWeight(
                policy_pb2.DeleteGpuTypeWeightRequest(gpu_type=gpu_type), **op.call
            )
        else:
            reply = await op.stub.SetGpuTypeWeight(
                policy_pb2.SetGpuTypeWeightRequest(gpu_type=gpu_type, weight=weight), **op.call
            )
    if body.reclaim_lent_capacity is not None or body.preemption_grace_seconds is not None:
        reply = await op.stub.SetPreemption(
            policy_pb2.SetPreemptionRequest(
                reclaim_lent_capacity=body.reclaim_lent_capacity,
                grace_seconds=body.preemption_grace_seconds,
            ),
            **op.call,
        )
    if reply is None:
        reply = await op.stub.GetPolicy(policy_pb2.GetPolicyRequest(), **op.call)
    return policy_out(reply)


@router.put(
    "/v1/admin/fair-shares/{org_id}",
    response_model=PolicyOut,
    responses=_OPERATOR_ERRORS,
    summary="Set an organization's fair-share weight (operator)",
)
async def put_fair_share(org_id: OrgId, body: FairShareUpdate, op: OperatorDep) -> PolicyOut:
    reply = await op.stub.SetFairShare(
        policy_pb2.SetFairShareRequest(organization_id=org_id, weight=body.weight), **op.call
    )
    return policy_out(reply)


@router.delete(
    "/v1/admin/fair-shares/{org_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_OPERATOR_ERRORS,
    summary="Put an organization back to the default fair-share weight (operator)",
)
async def delete_fair_share(org_id: OrgId, op: OperatorDep) -> Response:
    await op.stub.DeleteFairShare(policy_pb2.DeleteFairShareRequest(organization_id=org_id), **op.call)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/v1/admin/quotas/{org_id}/{gpu_type}",
    response_model=QuotaOut,
    responses=_OPERATOR_ERRORS,
    summary="Set an organization's quota for a GPU type (operator)",
)
async def put_quota(org_id: OrgId, gpu_type: GpuType, body: QuotaUpdate, op: OperatorDep) -> QuotaOut:
    request = policy_pb2.SetQuotaRequest(
        organization_id=org_id,
        gpu_type=gpu_type,
        nominal=body.nominal,
        borrowing_limit=body.borrowing_limit,
        lending_limit=body.lending_limit,
    )
    return quota_out(await op.stub.SetQuota(request, **op.call))


@router.delete(
    "/v1/admin/quotas/{org_id}/{gpu_type}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_OPERATOR_ERRORS,
    summary="Remove an organization's quota for a GPU type (operator)",
)
async def delete_quota(org_id: OrgId, gpu_type: GpuType, op: OperatorDep) -> Response:
    await op.stub.DeleteQuota(
        policy_pb2.DeleteQuotaRequest(organization_id=org_id, gpu_type=gpu_type), **op.call
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


Limit = Annotated[int | None, Query(ge=1, le=limits.MAX_PAGE, description="Page size (default 50).")]
BeforeId = Annotated[int | None, Query(ge=1, description="`next_before_id` of the previous page.")]


@router.get(
    "/v1/admin/audit",
    response_model=AuditPageOut,
    responses=problem_responses(422),
    summary="The policy audit trail, newest first (operator)",
)
async def list_audit(
    op: OperatorDep,
    organization_id: Annotated[
        str | None, Query(max_length=36, description="Only the entries that concern this organization.")
    ] = None,
    limit: Limit = None,
    before_id: BeforeId = None,
) -> AuditPageOut:
    request = policy_pb2.ListAuditRequest(
        organization_id=organization_id or "", limit=limit or 0, before_id=before_id or 0
    )
    return audit_out(await op.stub.ListAudit(request, **op.call))


# ----------------------------------------------------------------------------- organization admins


@router.get(
    "/v1/organization/user-caps",
    response_model=UserCapsOut,
    responses=problem_responses(),
    summary="Your organization's per-user caps (owner or admin)",
)
async def get_user_caps(caller: CallerDep, down: DownstreamDep) -> UserCapsOut:
    return user_caps_out(await policy_stub(down).GetUserCaps(policy_pb2.GetUserCapsRequest(), **caller.call))


@router.put(
    "/v1/organization/user-caps",
    response_model=UserCapsOut,
    responses=problem_responses(422),
    summary="Replace your organization's per-user caps (owner or admin)",
)
async def put_user_caps(body: UserCapsUpdate, caller: CallerDep, down: DownstreamDep) -> UserCapsOut:
    request = policy_pb2.SetUserCapsRequest(
        caps=[
            policy_pb2.UserCap(
                user_id=c.user_id or "", max_running_jobs=c.max_running_jobs, max_gpus=c.max_gpus
            )
            for c in body.caps
        ]
    )
    return user_caps_out(await policy_stub(down).SetUserCaps(request, **caller.call))


@router.get(
    "/v1/organization/project-policy",
    response_model=ProjectPoliciesOut,
    responses=problem_responses(),
    summary="Your organization's per-project fair-share weights and caps (owner or admin)",
)
async def get_project_policy(caller: CallerDep, down: DownstreamDep) -> ProjectPoliciesOut:
    reply = await policy_stub(down).GetProjectPolicies(policy_pb2.GetProjectPoliciesRequest(), **caller.call)
    return project_policies_out(reply)


@router.put(
    "/v1/organization/project-policy",
    response_model=ProjectPoliciesOut,
    responses=problem_responses(422),
    summary="Replace your organization's per-project weights and caps (owner or admin; audited)",
)
async def put_project_policy(
    body: ProjectPoliciesUpdate, caller: CallerDep, down: DownstreamDep
) -> ProjectPoliciesOut:
    reply = await policy_stub(down).SetProjectPolicies(project_policies_in(body), **caller.call)
    return project_policies_out(reply)


@router.get(
    "/v1/organization/policy-audit",
    response_model=AuditPageOut,
    responses=problem_responses(422),
    summary="The policy audit entries that concern your organization (owner or admin)",
)
async def list_organization_audit(
    caller: CallerDep, down: DownstreamDep, limit: Limit = None, before_id: BeforeId = None
) -> AuditPageOut:
    request = policy_pb2.ListAuditRequest(limit=limit or 0, before_id=before_id or 0)
    return audit_out(await policy_stub(down).ListOrganizationAudit(request, **caller.call))


# ----------------------------------------------------------------------------- abuse limits (operator)
# Plans (seed 002's tiers) of a queued-jobs cap and a submit rate, and each organization's plan and
# overrides (docs/limits.md). A submit beyond them is 429 with Retry-After and RateLimit headers.


@router.get(
    "/v1/admin/plans",
    response_model=PlansOut,
    responses=problem_responses(),
    summary="Every plan and the default plan (operator)",
)
async def list_plans(op: OperatorDep) -> PlansOut:
    return plans_out(await op.stub.ListPlans(policy_pb2.ListPlansRequest(), **op.call))


@router.put(
    "/v1/admin/plans/{name}",
    response_model=PlanOut,
    responses=problem_responses(422),
    summary="Create or replace a plan's limits (operator)",
)
async def put_plan(
    name: Annotated[PlanName, Path(description="The plan's name, e.g. free, individual, professional.")],
    body: PlanUpdate,
    op: OperatorDep,
) -> PlanOut:
    request = policy_pb2.SetPlanRequest(name=name, limits=limits_in(body))
    return plan_out(await op.stub.SetPlan(request, **op.call))


@router.put(
    "/v1/admin/default-plan",
    response_model=PlansOut,
    responses=problem_responses(422),
    summary="Set the plan of organizations without one of their own (operator)",
)
async def put_default_plan(body: DefaultPlanUpdate, op: OperatorDep) -> PlansOut:
    request = policy_pb2.SetDefaultPlanRequest(plan=body.plan or "")
    return plans_out(await op.stub.SetDefaultPlan(request, **op.call))


@router.get(
    "/v1/admin/limits/{org_id}",
    response_model=OrganizationLimitsOut,
    responses=problem_responses(422),
    summary="An organization's plan, overrides and the limits that apply (operator)",
)
async def get_organization_limits(org_id: OrgId, op: OperatorDep) -> OrganizationLimitsOut:
    request = policy_pb2.GetOrganizationLimitsRequest(organization_id=org_id)
    return organization_limits_out(await op.stub.GetOrganizationLimits(request, **op.call))


@router.put(
    "/v1/admin/limits/{org_id}",
    response_model=OrganizationLimitsOut,
    responses=problem_responses(422),
    summary="Set an organization's plan and overrides (operator)",
)
async def put_organization_limits(
    org_id: OrgId, body: OrganizationLimitsUpdate, op: OperatorDep
) -> OrganizationLimitsOut:
    request = policy_pb2.SetOrganizationLimitsRequest(
        organization_id=org_id, plan=body.plan or "", overrides=limits_in(body)
    )
    return organization_limits_out(await op.stub.SetOrganizationLimits(request, **op.call))


@router.delete(
    "/v1/admin/limits/{org_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_OPERATOR_ERRORS,
    summary="Put an organization back on the default plan without overrides (operator)",
)
async def delete_organization_limits(org_id: OrgId, op: OperatorDep) -> Response:
    request = policy_pb2.DeleteOrganizationLimitsRequest(organization_id=org_id)
    await op.stub.DeleteOrganizationLimits(request, **op.call)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
