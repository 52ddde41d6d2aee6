from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetUtilizationRequest(_message.Message):
    __slots__ = ("hours",)
    HOURS_FIELD_NUMBER: _ClassVar[int]
    hours: int
    def __init__(self, hours: _Optional[int] = ...) -> None: ...

class GpuUtilization(_message.Message):
    __slots__ = ("gpu_id", "gpu_name", "gpu_type", "avg_utilization", "max_utilization", "avg_memory_used_mb", "samples", "first_sample_at", "last_sample_at")
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    AVG_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    MAX_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    AVG_MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SAMPLE_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SAMPLE_AT_FIELD_NUMBER: _ClassVar[int]
    gpu_id: str
    gpu_name: str
    gpu_type: str
    avg_utilization: float
    max_utilization: float
    avg_memory_used_mb: float
    samples: int
    first_sample_at: str
    last_sample_at: str
    def __init__(self, gpu_id: _Optional[str] = ..., gpu_name: _Optional[str] = ..., gpu_type: _Optional[str] = ..., avg_utilization: _Optional[float] = ..., max_utilization: _Optional[float] = ..., avg_memory_used_mb: _Optional[float] = ..., samples: _Optional[int] = ..., first_sample_at: _Optional[str] = ..., last_sample_at: _Optional[str] = ...) -> None: ...

class GetUtilizationResponse(_message.Message):
    __slots__ = ("hours", "gpus")
    HOURS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    hours: int
    gpus: _containers.RepeatedCompositeFieldContainer[GpuUtilization]
    def __init__(self, hours: _Optional[int] = ..., gpus: _Optional[_Iterable[_Union[GpuUtilization, _Mapping]]] = ...) -> None: ...

class GetUtilizationSeriesRequest(_message.Message):
    __slots__ = ("from_time", "to_time", "step_seconds", "gpu_id")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    from_time: str
    to_time: str
    step_seconds: int
    gpu_id: str
    def __init__(self, from_time: _Optional[str] = ..., to_time: _Optional[str] = ..., step_seconds: _Optional[int] = ..., gpu_id: _Optional[str] = ...) -> None: ...

class UtilizationPoint(_message.Message):
    __slots__ = ("t", "utilization", "memory_used_mb", "samples")
    T_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    t: str
    utilization: float
    memory_used_mb: int
    samples: int
    def __init__(self, t: _Optional[str] = ..., utilization: _Optional[float] = ..., memory_used_mb: _Optional[int] = ..., samples: _Optional[int] = ...) -> None: ...

class GpuUtilizationSeries(_message.Message):
    __slots__ = ("gpu_id", "gpu_name", "gpu_type", "points")
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    gpu_id: str
    gpu_name: str
    gpu_type: str
    points: _containers.RepeatedCompositeFieldContainer[UtilizationPoint]
    def __init__(self, gpu_id: _Optional[str] = ..., gpu_name: _Optional[str] = ..., gpu_type: _Optional[str] = ..., points: _Optional[_Iterable[_Union[UtilizationPoint, _Mapping]]] = ...) -> None: ...

class AggregateUtilizationPoint(_message.Message):
    __slots__ = ("t", "utilization", "gpus")
    T_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    t: str
    utilization: float
    gpus: int
    def __init__(self, t: _Optional[str] = ..., utilization: _Optional[float] = ..., gpus: _Optional[int] = ...) -> None: ...

class UtilizationSeries(_message.Message):
    __slots__ = ("from_time", "to_time", "step_seconds", "series", "aggregate")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    from_time: str
    to_time: str
    step_seconds: int
    series: _containers.RepeatedCompositeFieldContainer[GpuUtilizationSeries]
    aggregate: _containers.RepeatedCompositeFieldContainer[AggregateUtilizationPoint]
    def __init__(self, from_time: _Optional[str] = ..., to_time: _Optional[str] = ..., step_seconds: _Optional[int] = ..., series: _Optional[_Iterable[_Union[GpuUtilizationSeries, _Mapping]]] = ..., aggregate: _Optional[_Iterable[_Union[AggregateUtilizationPoint, _Mapping]]] = ...) -> None: ...
