"""Bodies of the scheduling-policy routes (routes/admin.py): the operator's ``/v1/admin/*`` and an
organization admin's ``/v1/organization/*``. Requests are strict like every other body
(entrypoints/requests.py); their bounds are the scheduler's own (``shared.contracts.limits``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from gpufleet.v1 import fleet_pb2, policy_pb2
from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import limits
from shared.wire import parse_ts

Weight = Annotated[float, Field(gt=0, le=limits.POLICY_MAX_WEIGHT)]
Count = Annotated[int, Field(ge=0, le=limits.POLICY_MAX_COUNT)]
GpuTypeName = Annotated[str, Field(pattern=limits.POLICY_GPU_TYPE_PATTERN, examples=["a100-80gb"])]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ----------------------------------------------------------------------------- requests


class PolicyUpdate(_StrictBody):
    """Fields left out stay as they are. Each field given is applied and audited as its own change."""

    half_life_seconds: (
        Annotated[
            float, Field(ge=limits.POLICY_MIN_HALF_LIFE_SECONDS, le=limits.POLICY_MAX_HALF_LIFE_SECONDS)
        ]
        | None
    ) = Field(default=None, description="Half-life of decayed usage in fair share (Slurm's default: 7 days).")
    dedicated_lending_limit: Count | None = Field(
        default=None,
        description="GPUs of a dedicated node its owner lends when it has no quota for their type.",
    )
    gpu_type_weights: dict[GpuTypeName, Weight | None] | None = Field(
        default=None,
        description="Weight of a GPU type in usage (Slurm's TRESBillingWeights); null puts a type back "
        "to the default weight 1.",
        max_length=100,
    )
    reclaim_lent_capacity: bool | None = Field(
        default=None,
        description="Preempt jobs that run on borrowed capacity when the organization that lent it "
        "has a job waiting within its nominal quota (default on; docs/policy.md#preemption).",
    )
    preemption_grace_seconds: (
        Annotated[int, Field(ge=0, le=limits.POLICY_MAX_PREEMPTION_GRACE_SECONDS)] | None
    ) = Field(
        default=None,
        description="How long a borrowed job runs at least before it may be preempted (default 0).",
    )


class FairShareUpdate(_StrictBody):
    weight: Weight = Field(
        description="The organization's fair-share weight among organizations (default 1)."
    )


class QuotaUpdate(_StrictBody):
    nominal: Count = Field(description="GPUs of this type that are the organization's own.")
    borrowing_limit: Count | None = Field(
        default=None, description="How many more it may borrow from others' idle quota (null: no limit)."
    )
    lending_limit: Count | None = Field(
        default=None, description="How much of its idle nominal others may borrow (null: all of it)."
    )


class UserCapIn(_StrictBody):
    user_id: str | None = Field(
        default=None,
        description="A user of the organization; null: the cap of every user without one of their own.",
        max_length=36,
    )
    max_running_jobs: Count | None = Field(default=None, description="Jobs on nodes at once (null: no cap).")
    max_gpus: Count | None = Field(default=None, description="GPUs held at once (null: no cap).")


class UserCapsUpdate(_StrictBody):
    caps: list[UserCapIn] = Field(
        description="Replaces the organization's caps (an empty list removes them).",
        max_length=limits.POLICY_MAX_USER_CAPS,
    )


# ----------------------------------------------------------------------------- responses


class FairShareOut(BaseModel):
    organization_id: str
    weight: float


class GpuTypeWeightOut(BaseModel):
    gpu_type: str
    weight: float


class QuotaOut(BaseModel):
    organization_id: str
    gpu_type: str
    nominal: int
    borrowing_limit: int | None = Field(description="null: no limit")
    lending_limit: int | None = Field(description="null: lends all its idle nominal")


class UserCapOut(BaseModel):
    user_id: str | None = Field(description="null: the organization's cap for each of its users")
    max_running_jobs: int | None
    max_gpus: int | None


class UserCapsOut(BaseModel):
    organization_id: str
    caps: list[UserCapOut]


class PolicyOut(BaseModel):
    version: int = Field(description="Grows with every change; the scheduler applies it on its next cycle.")
    half_life_seconds: float
    dedicated_lending_limit: int
    fair_shares: list[FairShareOut]
    gpu_type_weights: list[GpuTypeWeightOut]
    quotas: list[QuotaOut]
    user_caps: list[UserCapsOut]
    reclaim_lent_capacity: bool = True
    preemption_grace_seconds: int = 0


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: Literal["operator", "member"]
    organization_id: str | None = Field(description="The organization the change concerns (null: global).")
    actor_user_id: str | None = Field(description="The member who made it (null: the operator).")
    actor_api_key_id: str | None = Field(description="The key it was made with (null: the operator).")
    method: str = Field(examples=["PolicyService/SetQuota"])
    before: Any = Field(description="What was there (null: nothing).")
    after: Any = Field(description="What is there now (null: removed).")
    operator_name: str | None = Field(
        default=None,
        description="Which operator made it (operator entries, in the operator's view; null otherwise).",
    )


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_before_id: int | None = Field(description="Pass as `before_id` for older entries; null: no more.")


# ----------------------------------------------------------------------------- translation


def _opt(message: Any, name: str) -> int | None:
    return getattr(message, name) if message.HasField(name) else None


def quota_out(q: policy_pb2.Quota) -> QuotaOut:
    return QuotaOut(
        organization_id=q.organization_id,
        gpu_type=q.gpu_type,
        nominal=q.nominal,
        borrowing_limit=_opt(q, "borrowing_limit"),
        lending_limit=_opt(q, "lending_limit"),
    )


def user_caps_out(c: policy_pb2.UserCaps) -> UserCapsOut:
    return UserCapsOut(
        organization_id=c.organization_id,
        caps=[
            UserCapOut(
                user_id=cap.user_id or None,
                max_running_jobs=_opt(cap, "max_running_jobs"),
                max_gpus=_opt(cap, "max_gpus"),
            )
            for cap in c.caps
        ],
    )


def policy_out(p: policy_pb2.Policy) -> PolicyOut:
    return PolicyOut(
        version=p.version,
        half_life_seconds=p.half_life_seconds,
        dedicated_lending_limit=p.dedicated_lending_limit,
        fair_shares=[FairShareOut(organization_id=f.organization_id, weight=f.weight) for f in p.fair_shares],
        gpu_type_weights=[GpuTypeWeightOut(gpu_type=w.gpu_type, weight=w.weight) for w in p.gpu_type_weights],
        quotas=[quota_out(q) for q in p.quotas],
        user_caps=[user_caps_out(c) for c in p.user_caps],
        reclaim_lent_capacity=p.reclaim_lent_capacity,
        preemption_grace_seconds=p.preemption_grace_seconds,
    )


def audit_out(r: policy_pb2.ListAuditResponse) -> AuditPageOut:
    return AuditPageOut(
        entries=[
            AuditEntryOut(
                id=e.id,
                at=parse_ts(e.at, "at"),  # type: ignore[arg-type]
                actor=e.actor,  # type: ignore[arg-type]
                organization_id=e.organization_id or None,
                actor_user_id=e.actor_user_id or None,
                actor_api_key_id=e.actor_api_key_id or None,
                method=e.method,
                before=json.loads(e.before_json or "null"),
                after=json.loads(e.after_json or "null"),
                operator_name=e.operator_name or None,
            )
            for e in r.entries
        ],
        next_before_id=r.next_before_id or None,
    )


# ----------------------------------------------------------------------------- abuse limits (docs/limits.md)

QueuedCap = Annotated[int, Field(ge=0, le=limits.LIMITS_MAX_QUEUED_JOBS)]
SubmitRate = Annotated[float, Field(gt=0, le=limits.LIMITS_MAX_SUBMIT_RATE)]
SubmitBurst = Annotated[int, Field(ge=1, le=limits.LIMITS_MAX_SUBMIT_BURST)]
PlanName = Annotated[str, Field(pattern=limits.PLAN_NAME_PATTERN, examples=["free"])]


class _LimitsIn(_StrictBody):
    max_queued_jobs: QueuedCap | None = Field(
        default=None, description="Jobs of the organization queued at once, held ones included."
    )
    submit_rate: SubmitRate | None = Field(
        default=None, description="Submits per second (the token bucket's refill); with `submit_burst`."
    )
    submit_burst: SubmitBurst | None = Field(
        default=None, description="Submits at once (the token bucket's size); with `submit_rate`."
    )


class PlanUpdate(_LimitsIn):
    """A plan's limits; a field left out or null is no limit."""


class OrganizationLimitsUpdate(_LimitsIn):
    """Replaces what was set for the organization. A limit left out or null is the plan's."""

    plan: PlanName | None = Field(
        default=None, description="The organization's plan (null: the default plan)."
    )


class DefaultPlanUpdate(_StrictBody):
    plan: PlanName | None = Field(
        description="The plan of organizations without one of their own (null: they have no limits)."
    )


class LimitsOut(BaseModel):
    max_queued_jobs: int | None = Field(description="null: no cap (in overrides: the plan's)")
    submit_rate: float | None = Field(
        description="Submits per second; null: no rate limit (overrides: the plan's)"
    )
    submit_burst: int | None = Field(description="Submits at once; null with `submit_rate`")


class PlanOut(LimitsOut):
    name: str


class PlansOut(BaseModel):
    plans: list[PlanOut]
    default_plan: str | None = Field(description="null: organizations without a plan have no limits")


class OrganizationLimitsOut(BaseModel):
    organization_id: str
    set: bool = Field(description="Whether a plan or overrides were set for this organization.")
    plan: str | None = Field(description="The plan as set (null: the default plan).")
    overrides: LimitsOut
    effective_plan: str | None = Field(description="The plan that applies (null: none).")
    effective: LimitsOut = Field(description="The limits that apply now.")


def _opt_float(message: Any, name: str) -> float | None:
    return float(getattr(message, name)) if message.HasField(name) else None


def _limits_out(m: policy_pb2.Limits) -> dict[str, Any]:
    return {
        "max_queued_jobs": _opt(m, "max_queued_jobs"),
        "submit_rate": _opt_float(m, "submit_rate"),
        "submit_burst": _opt(m, "submit_burst"),
    }


def limits_in(body: _LimitsIn) -> policy_pb2.Limits:
    return policy_pb2.Limits(
        max_queued_jobs=body.max_queued_jobs, submit_rate=body.submit_rate, submit_burst=body.submit_burst
    )


def plan_out(p: policy_pb2.Plan) -> PlanOut:
    return PlanOut(name=p.name, **_limits_out(p.limits))


def plans_out(p: policy_pb2.Plans) -> PlansOut:
    return PlansOut(plans=[plan_out(x) for x in p.plans], default_plan=p.default_plan or None)


def organization_limits_out(o: policy_pb2.OrganizationLimits) -> OrganizationLimitsOut:
    return OrganizationLimitsOut(
        organization_id=o.organization_id,
        set=o.set,
        plan=o.plan or None,
        overrides=LimitsOut(**_limits_out(o.overrides)),
        effective_plan=o.effective_plan or None,
        effective=LimitsOut(**_limits_out(o.effective)),
    )


# ----------------------------------------------------------------------------- the whole fleet (operator)


class FleetHolderOut(BaseModel):
    organization_id: str
    job_id: str


class FleetGpuOut(BaseModel):
    id: str
    index: int
    name: str
    gpu_type: str
    uuid: str
    memory_total_mb: int
    status: str = Field(
        description="available | allocated | draining | unhealthy | offline (allocated: a job holds it)"
    )
    holder: FleetHolderOut | None = Field(description="The job holding the GPU and its organization.")


class FleetNodeOut(BaseModel):
    id: str
    hostname: str
    provider: str
    is_spot: bool
    status: str = Field(description="online | offline")
    last_heartbeat: str | None
    organization_id: str | None = Field(description="The organization it is dedicated to; null: shared.")
    gpus: list[FleetGpuOut]


class FleetOut(BaseModel):
    """Every node of the fleet, every organization's, with its GPUs and who holds them."""

    nodes: list[FleetNodeOut]


def fleet_out(nodes: list[fleet_pb2.FleetNode], holds: list[policy_pb2.HeldGpu]) -> FleetOut:
    by_gpu = {h.gpu_id: h for h in holds}

    def gpu(g: fleet_pb2.Gpu) -> FleetGpuOut:
        hold = by_gpu.get(g.id)
        return FleetGpuOut(
            id=g.id,
            index=g.index,
            name=g.name,
            gpu_type=g.gpu_type,
            uuid=g.uuid,
            memory_total_mb=g.memory_total_mb,
            status="allocated" if hold is not None and g.status == "available" else g.status,
            holder=FleetHolderOut(organization_id=hold.organization_id, job_id=hold.job_id) if hold else None,
        )

    return FleetOut(
        nodes=[
            FleetNodeOut(
                id=n.node.id,
                hostname=n.node.hostname,
                provider=n.node.provider,
                is_spot=n.node.is_spot,
                status=n.node.status,
                last_heartbeat=n.node.last_heartbeat or None,
                organization_id=n.organization_id or None,
                gpus=[gpu(g) for g in n.node.gpus],
            )
            for n in nodes
        ]
    )
