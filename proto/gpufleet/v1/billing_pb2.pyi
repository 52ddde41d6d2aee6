from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CostLine(_message.Message):
    __slots__ = ("gpu_id", "gpu_type", "cost_per_hour", "start_time", "end_time", "seconds", "cost", "attempt", "credit")
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    gpu_id: str
    gpu_type: str
    cost_per_hour: str
    start_time: str
    end_time: str
    seconds: str
    cost: str
    attempt: int
    credit: str
    def __init__(self, gpu_id: _Optional[str] = ..., gpu_type: _Optional[str] = ..., cost_per_hour: _Optional[str] = ..., start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., seconds: _Optional[str] = ..., cost: _Optional[str] = ..., attempt: _Optional[int] = ..., credit: _Optional[str] = ...) -> None: ...

class AttemptCost(_message.Message):
    __slots__ = ("attempt", "outcome", "gross_cost", "credit", "net_cost", "gpu_count", "held_seconds", "start_time", "end_time")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GROSS_COST_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    NET_COST_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    HELD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    outcome: str
    gross_cost: str
    credit: str
    net_cost: str
    gpu_count: int
    held_seconds: str
    start_time: str
    end_time: str
    def __init__(self, attempt: _Optional[int] = ..., outcome: _Optional[str] = ..., gross_cost: _Optional[str] = ..., credit: _Optional[str] = ..., net_cost: _Optional[str] = ..., gpu_count: _Optional[int] = ..., held_seconds: _Optional[str] = ..., start_time: _Optional[str] = ..., end_time: _Optional[str] = ...) -> None: ...

class JobCost(_message.Message):
    __slots__ = ("job_id", "organization_id", "currency", "total_cost", "gpu_count", "held_seconds", "lines", "recorded_at", "gross_cost", "credit", "attempts", "project_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    HELD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    GROSS_COST_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    organization_id: str
    currency: str
    total_cost: str
    gpu_count: int
    held_seconds: str
    lines: _containers.RepeatedCompositeFieldContainer[CostLine]
    recorded_at: str
    gross_cost: str
    credit: str
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptCost]
    project_id: str
    def __init__(self, job_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., currency: _Optional[str] = ..., total_cost: _Optional[str] = ..., gpu_count: _Optional[int] = ..., held_seconds: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[CostLine, _Mapping]]] = ..., recorded_at: _Optional[str] = ..., gross_cost: _Optional[str] = ..., credit: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[AttemptCost, _Mapping]]] = ..., project_id: _Optional[str] = ...) -> None: ...

class GetJobCostRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobCostsRequest(_message.Message):
    __slots__ = ("limit", "cursor", "project_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    cursor: str
    project_id: str
    def __init__(self, limit: _Optional[int] = ..., cursor: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListJobCostsResponse(_message.Message):
    __slots__ = ("costs", "next_cursor", "total_cost")
    COSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    costs: _containers.RepeatedCompositeFieldContainer[JobCost]
    next_cursor: str
    total_cost: str
    def __init__(self, costs: _Optional[_Iterable[_Union[JobCost, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., total_cost: _Optional[str] = ...) -> None: ...

class SummarizeCostsRequest(_message.Message):
    __slots__ = ("group_by", "from_time", "to_time", "include_running", "project_id")
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    group_by: str
    from_time: str
    to_time: str
    include_running: bool
    project_id: str
    def __init__(self, group_by: _Optional[str] = ..., from_time: _Optional[str] = ..., to_time: _Optional[str] = ..., include_running: _Optional[bool] = ..., project_id: _Optional[str] = ...) -> None: ...

class CostGroup(_message.Message):
    __slots__ = ("key", "gpu_seconds", "cost", "running_cost", "jobs")
    KEY_FIELD_NUMBER: _ClassVar[int]
    GPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COST_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    key: str
    gpu_seconds: str
    cost: str
    running_cost: str
    jobs: int
    def __init__(self, key: _Optional[str] = ..., gpu_seconds: _Optional[str] = ..., cost: _Optional[str] = ..., running_cost: _Optional[str] = ..., jobs: _Optional[int] = ...) -> None: ...

class CostSummary(_message.Message):
    __slots__ = ("group_by", "from_time", "to_time", "currency", "groups", "total", "as_of", "include_running")
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    group_by: str
    from_time: str
    to_time: str
    currency: str
    groups: _containers.RepeatedCompositeFieldContainer[CostGroup]
    total: CostGroup
    as_of: str
    include_running: bool
    def __init__(self, group_by: _Optional[str] = ..., from_time: _Optional[str] = ..., to_time: _Optional[str] = ..., currency: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[CostGroup, _Mapping]]] = ..., total: _Optional[_Union[CostGroup, _Mapping]] = ..., as_of: _Optional[str] = ..., include_running: _Optional[bool] = ...) -> None: ...
