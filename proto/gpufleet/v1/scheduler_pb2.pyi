from gpufleet.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("command", "gpu_count", "gpu_memory_mb", "gpu_type", "priority", "webhook_url", "name", "idempotency_key", "nodes", "cpu_cores", "ram_mb", "time_limit_seconds", "hold", "no_requeue", "project_id", "image")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    NO_REQUEUE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    command: str
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str
    priority: int
    webhook_url: str
    name: str
    idempotency_key: str
    nodes: int
    cpu_cores: int
    ram_mb: int
    time_limit_seconds: int
    hold: bool
    no_requeue: bool
    project_id: str
    image: str
    def __init__(self, command: _Optional[str] = ..., gpu_count: _Optional[int] = ..., gpu_memory_mb: _Optional[int] = ..., gpu_type: _Optional[str] = ..., priority: _Optional[int] = ..., webhook_url: _Optional[str] = ..., name: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., nodes: _Optional[int] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., time_limit_seconds: _Optional[int] = ..., hold: _Optional[bool] = ..., no_requeue: _Optional[bool] = ..., project_id: _Optional[str] = ..., image: _Optional[str] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("jobs", "idempotency_key")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest]
    idempotency_key: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[SubmitJobRequest, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class PendingReason(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JobPlacement(_message.Message):
    __slots__ = ("node_id", "rank", "gpu_ids")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    rank: int
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., rank: _Optional[int] = ..., gpu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "at", "reason")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    status: str
    at: str
    reason: str
    def __init__(self, status: _Optional[str] = ..., at: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "organization_id", "user_id", "name", "command", "gpu_count", "gpu_memory_mb", "gpu_type", "priority", "status", "node_id", "gpu_ids", "webhook_url", "has_exit_code", "exit_code", "output_tail", "error_message", "created_at", "scheduled_at", "started_at", "finished_at", "cancel_requested", "history", "nodes", "cpu_cores", "ram_mb", "time_limit_seconds", "held", "no_requeue", "attempt", "pending_reason", "queue_position", "estimated_start", "placements", "project_id", "image")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    NO_REQUEUE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_START_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    user_id: str
    name: str
    command: str
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str
    priority: int
    status: str
    node_id: str
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    webhook_url: str
    has_exit_code: bool
    exit_code: int
    output_tail: str
    error_message: str
    created_at: str
    scheduled_at: str
    started_at: str
    finished_at: str
    cancel_requested: bool
    history: _containers.RepeatedCompositeFieldContainer[StatusChange]
    nodes: int
    cpu_cores: int
    ram_mb: int
    time_limit_seconds: int
    held: bool
    no_requeue: bool
    attempt: int
    pending_reason: PendingReason
    queue_position: int
    estimated_start: str
    placements: _containers.RepeatedCompositeFieldContainer[JobPlacement]
    project_id: str
    image: str
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., user_id: _Optional[str] = ..., name: _Optional[str] = ..., command: _Optional[str] = ..., gpu_count: _Optional[int] = ..., gpu_memory_mb: _Optional[int] = ..., gpu_type: _Optional[str] = ..., priority: _Optional[int] = ..., status: _Optional[str] = ..., node_id: _Optional[str] = ..., gpu_ids: _Optional[_Iterable[str]] = ..., webhook_url: _Optional[str] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., output_tail: _Optional[str] = ..., error_message: _Optional[str] = ..., created_at: _Optional[str] = ..., scheduled_at: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., history: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ..., nodes: _Optional[int] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., time_limit_seconds: _Optional[int] = ..., held: _Optional[bool] = ..., no_requeue: _Optional[bool] = ..., attempt: _Optional[int] = ..., pending_reason: _Optional[_Union[PendingReason, _Mapping]] = ..., queue_position: _Optional[int] = ..., estimated_start: _Optional[str] = ..., placements: _Optional[_Iterable[_Union[JobPlacement, _Mapping]]] = ..., project_id: _Optional[str] = ..., image: _Optional[str] = ...) -> None: ...

class UpdateJobPriorityRequest(_message.Message):
    __slots__ = ("id", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("status", "limit", "cursor", "project_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    limit: int
    cursor: str
    project_id: str
    def __init__(self, status: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_cursor")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_cursor: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ListAllocationsRequest(_message.Message):
    __slots__ = ("gpu_ids",)
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gpu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GpuAllocation(_message.Message):
    __slots__ = ("gpu_id", "job_id", "mine")
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MINE_FIELD_NUMBER: _ClassVar[int]
    gpu_id: str
    job_id: str
    mine: bool
    def __init__(self, gpu_id: _Optional[str] = ..., job_id: _Optional[str] = ..., mine: _Optional[bool] = ...) -> None: ...

class ListAllocationsResponse(_message.Message):
    __slots__ = ("allocations",)
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    allocations: _containers.RepeatedCompositeFieldContainer[GpuAllocation]
    def __init__(self, allocations: _Optional[_Iterable[_Union[GpuAllocation, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("job_id", "command", "gpu_indices", "gpu_ids", "organization_id", "status", "cancel_requested", "attempt", "time_limit_seconds", "cpu_cores", "ram_mb", "rank", "world_size", "master_addr", "master_port", "node_names", "image")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    GPU_INDICES_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    MASTER_ADDR_FIELD_NUMBER: _ClassVar[int]
    MASTER_PORT_FIELD_NUMBER: _ClassVar[int]
    NODE_NAMES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    command: str
    gpu_indices: _containers.RepeatedScalarFieldContainer[int]
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    organization_id: str
    status: str
    cancel_requested: bool
    attempt: int
    time_limit_seconds: int
    cpu_cores: int
    ram_mb: int
    rank: int
    world_size: int
    master_addr: str
    master_port: int
    node_names: _containers.RepeatedScalarFieldContainer[str]
    image: str
    def __init__(self, job_id: _Optional[str] = ..., command: _Optional[str] = ..., gpu_indices: _Optional[_Iterable[int]] = ..., gpu_ids: _Optional[_Iterable[str]] = ..., organization_id: _Optional[str] = ..., status: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., attempt: _Optional[int] = ..., time_limit_seconds: _Optional[int] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., rank: _Optional[int] = ..., world_size: _Optional[int] = ..., master_addr: _Optional[str] = ..., master_port: _Optional[int] = ..., node_names: _Optional[_Iterable[str]] = ..., image: _Optional[str] = ...) -> None: ...

class WatchAssignmentsRequest(_message.Message):
    __slots__ = ("node_id", "known_revision")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REVISION_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    known_revision: int
    def __init__(self, node_id: _Optional[str] = ..., known_revision: _Optional[int] = ...) -> None: ...

class AssignmentsUpdate(_message.Message):
    __slots__ = ("revision", "assignments")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, revision: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class JobReport(_message.Message):
    __slots__ = ("job_id", "started", "finished")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    started: ReportJobStartedRequest
    finished: ReportJobFinishedRequest
    def __init__(self, job_id: _Optional[str] = ..., started: _Optional[_Union[ReportJobStartedRequest, _Mapping]] = ..., finished: _Optional[_Union[ReportJobFinishedRequest, _Mapping]] = ...) -> None: ...

class ReportJobsRequest(_message.Message):
    __slots__ = ("node_id", "reports")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    reports: _containers.RepeatedCompositeFieldContainer[JobReport]
    def __init__(self, node_id: _Optional[str] = ..., reports: _Optional[_Iterable[_Union[JobReport, _Mapping]]] = ...) -> None: ...

class ReportJobsResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acknowledged: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAssignmentsRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class GetAssignmentsResponse(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class ReportJobStartedRequest(_message.Message):
    __slots__ = ("node_id", "job_id", "started_at", "attempt")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    job_id: str
    started_at: str
    attempt: int
    def __init__(self, node_id: _Optional[str] = ..., job_id: _Optional[str] = ..., started_at: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ReportJobFinishedRequest(_message.Message):
    __slots__ = ("node_id", "job_id", "has_exit_code", "exit_code", "output_tail", "finished_at", "cancelled", "error_message", "timed_out", "attempt")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    job_id: str
    has_exit_code: bool
    exit_code: int
    output_tail: str
    finished_at: str
    cancelled: bool
    error_message: str
    timed_out: bool
    attempt: int
    def __init__(self, node_id: _Optional[str] = ..., job_id: _Optional[str] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., output_tail: _Optional[str] = ..., finished_at: _Optional[str] = ..., cancelled: _Optional[bool] = ..., error_message: _Optional[str] = ..., timed_out: _Optional[bool] = ..., attempt: _Optional[int] = ...) -> None: ...
