from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListAllAllocationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeldGpu(_message.Message):
    __slots__ = ("gpu_id", "node_id", "job_id", "organization_id")
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    gpu_id: str
    node_id: str
    job_id: str
    organization_id: str
    def __init__(self, gpu_id: _Optional[str] = ..., node_id: _Optional[str] = ..., job_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class ListAllAllocationsResponse(_message.Message):
    __slots__ = ("allocations",)
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    allocations: _containers.RepeatedCompositeFieldContainer[HeldGpu]
    def __init__(self, allocations: _Optional[_Iterable[_Union[HeldGpu, _Mapping]]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FairShare(_message.Message):
    __slots__ = ("organization_id", "weight")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    weight: float
    def __init__(self, organization_id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class GpuTypeWeight(_message.Message):
    __slots__ = ("gpu_type", "weight")
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    gpu_type: str
    weight: float
    def __init__(self, gpu_type: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("organization_id", "gpu_type", "nominal", "borrowing_limit", "lending_limit")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    NOMINAL_FIELD_NUMBER: _ClassVar[int]
    BORROWING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LENDING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    gpu_type: str
    nominal: int
    borrowing_limit: int
    lending_limit: int
    def __init__(self, organization_id: _Optional[str] = ..., gpu_type: _Optional[str] = ..., nominal: _Optional[int] = ..., borrowing_limit: _Optional[int] = ..., lending_limit: _Optional[int] = ...) -> None: ...

class UserCap(_message.Message):
    __slots__ = ("user_id", "max_running_jobs", "max_gpus")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_GPUS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    max_running_jobs: int
    max_gpus: int
    def __init__(self, user_id: _Optional[str] = ..., max_running_jobs: _Optional[int] = ..., max_gpus: _Optional[int] = ...) -> None: ...

class UserCaps(_message.Message):
    __slots__ = ("organization_id", "caps")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    caps: _containers.RepeatedCompositeFieldContainer[UserCap]
    def __init__(self, organization_id: _Optional[str] = ..., caps: _Optional[_Iterable[_Union[UserCap, _Mapping]]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("version", "half_life_seconds", "dedicated_lending_limit", "fair_shares", "gpu_type_weights", "quotas", "user_caps", "project_policies", "reclaim_lent_capacity", "preemption_grace_seconds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_LENDING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FAIR_SHARES_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    USER_CAPS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_POLICIES_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_LENT_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    PREEMPTION_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    version: int
    half_life_seconds: float
    dedicated_lending_limit: int
    fair_shares: _containers.RepeatedCompositeFieldContainer[FairShare]
    gpu_type_weights: _containers.RepeatedCompositeFieldContainer[GpuTypeWeight]
    quotas: _containers.RepeatedCompositeFieldContainer[Quota]
    user_caps: _containers.RepeatedCompositeFieldContainer[UserCaps]
    project_policies: _containers.RepeatedCompositeFieldContainer[ProjectPolicies]
    reclaim_lent_capacity: bool
    preemption_grace_seconds: int
    def __init__(self, version: _Optional[int] = ..., half_life_seconds: _Optional[float] = ..., dedicated_lending_limit: _Optional[int] = ..., fair_shares: _Optional[_Iterable[_Union[FairShare, _Mapping]]] = ..., gpu_type_weights: _Optional[_Iterable[_Union[GpuTypeWeight, _Mapping]]] = ..., quotas: _Optional[_Iterable[_Union[Quota, _Mapping]]] = ..., user_caps: _Optional[_Iterable[_Union[UserCaps, _Mapping]]] = ..., project_policies: _Optional[_Iterable[_Union[ProjectPolicies, _Mapping]]] = ..., reclaim_lent_capacity: _Optional[bool] = ..., preemption_grace_seconds: _Optional[int] = ...) -> None: ...

class SetPreemptionRequest(_message.Message):
    __slots__ = ("reclaim_lent_capacity", "grace_seconds")
    RECLAIM_LENT_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reclaim_lent_capacity: bool
    grace_seconds: int
    def __init__(self, reclaim_lent_capacity: _Optional[bool] = ..., grace_seconds: _Optional[int] = ...) -> None: ...

class SetFairShareRequest(_message.Message):
    __slots__ = ("organization_id", "weight")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    weight: float
    def __init__(self, organization_id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class DeleteFairShareRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class SetHalfLifeRequest(_message.Message):
    __slots__ = ("half_life_seconds",)
    HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    half_life_seconds: float
    def __init__(self, half_life_seconds: _Optional[float] = ...) -> None: ...

class SetGpuTypeWeightRequest(_message.Message):
    __slots__ = ("gpu_type", "weight")
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    gpu_type: str
    weight: float
    def __init__(self, gpu_type: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class DeleteGpuTypeWeightRequest(_message.Message):
    __slots__ = ("gpu_type",)
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    gpu_type: str
    def __init__(self, gpu_type: _Optional[str] = ...) -> None: ...

class SetDedicatedLendingLimitRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("organization_id", "gpu_type", "nominal", "borrowing_limit", "lending_limit")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    NOMINAL_FIELD_NUMBER: _ClassVar[int]
    BORROWING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LENDING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    gpu_type: str
    nominal: int
    borrowing_limit: int
    lending_limit: int
    def __init__(self, organization_id: _Optional[str] = ..., gpu_type: _Optional[str] = ..., nominal: _Optional[int] = ..., borrowing_limit: _Optional[int] = ..., lending_limit: _Optional[int] = ...) -> None: ...

class DeleteQuotaRequest(_message.Message):
    __slots__ = ("organization_id", "gpu_type")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    gpu_type: str
    def __init__(self, organization_id: _Optional[str] = ..., gpu_type: _Optional[str] = ...) -> None: ...

class GetUserCapsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetUserCapsRequest(_message.Message):
    __slots__ = ("caps",)
    CAPS_FIELD_NUMBER: _ClassVar[int]
    caps: _containers.RepeatedCompositeFieldContainer[UserCap]
    def __init__(self, caps: _Optional[_Iterable[_Union[UserCap, _Mapping]]] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("limit", "before_id", "organization_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    before_id: int
    organization_id: str
    def __init__(self, limit: _Optional[int] = ..., before_id: _Optional[int] = ..., organization_id: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("id", "at", "actor", "organization_id", "actor_user_id", "actor_api_key_id", "method", "before_json", "after_json", "operator_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    at: str
    actor: str
    organization_id: str
    actor_user_id: str
    actor_api_key_id: str
    method: str
    before_json: str
    after_json: str
    operator_name: str
    def __init__(self, id: _Optional[int] = ..., at: _Optional[str] = ..., actor: _Optional[str] = ..., organization_id: _Optional[str] = ..., actor_user_id: _Optional[str] = ..., actor_api_key_id: _Optional[str] = ..., method: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., operator_name: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries", "next_before_id")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_before_id: int
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_before_id: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_queued_jobs", "submit_rate", "submit_burst")
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_RATE_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    max_queued_jobs: int
    submit_rate: float
    submit_burst: int
    def __init__(self, max_queued_jobs: _Optional[int] = ..., submit_rate: _Optional[float] = ..., submit_burst: _Optional[int] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("name", "limits")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    name: str
    limits: Limits
    def __init__(self, name: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class Plans(_message.Message):
    __slots__ = ("plans", "default_plan")
    PLANS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PLAN_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    default_plan: str
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ..., default_plan: _Optional[str] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPlanRequest(_message.Message):
    __slots__ = ("name", "limits")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    name: str
    limits: Limits
    def __init__(self, name: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class SetDefaultPlanRequest(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: str
    def __init__(self, plan: _Optional[str] = ...) -> None: ...

class GetOrganizationLimitsRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class SetOrganizationLimitsRequest(_message.Message):
    __slots__ = ("organization_id", "plan", "overrides")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    plan: str
    overrides: Limits
    def __init__(self, organization_id: _Optional[str] = ..., plan: _Optional[str] = ..., overrides: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class DeleteOrganizationLimitsRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class OrganizationLimits(_message.Message):
    __slots__ = ("organization_id", "set", "plan", "overrides", "effective_plan", "effective")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PLAN_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    set: bool
    plan: str
    overrides: Limits
    effective_plan: str
    effective: Limits
    def __init__(self, organization_id: _Optional[str] = ..., set: _Optional[bool] = ..., plan: _Optional[str] = ..., overrides: _Optional[_Union[Limits, _Mapping]] = ..., effective_plan: _Optional[str] = ..., effective: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class ProjectPolicy(_message.Message):
    __slots__ = ("project_id", "weight", "max_running_jobs", "max_gpus")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_GPUS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    weight: float
    max_running_jobs: int
    max_gpus: int
    def __init__(self, project_id: _Optional[str] = ..., weight: _Optional[float] = ..., max_running_jobs: _Optional[int] = ..., max_gpus: _Optional[int] = ...) -> None: ...

class ProjectPolicies(_message.Message):
    __slots__ = ("organization_id", "policies")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    policies: _containers.RepeatedCompositeFieldContainer[ProjectPolicy]
    def __init__(self, organization_id: _Optional[str] = ..., policies: _Optional[_Iterable[_Union[ProjectPolicy, _Mapping]]] = ...) -> None: ...

class GetProjectPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetProjectPoliciesRequest(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[ProjectPolicy]
    def __init__(self, policies: _Optional[_Iterable[_Union[ProjectPolicy, _Mapping]]] = ...) -> None: ...
