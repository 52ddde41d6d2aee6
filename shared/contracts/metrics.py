"""Internal metrics topic contract (``gpufleet.metrics.v1``): one record per node per sampling tick."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

GPU_METRICS_SAMPLED = "gpufleet.gpu.metrics_sampled"


class GpuSampleV1(BaseModel):
    gpu_id: UUID
    gpu_name: str
    gpu_type: str
    timestamp: datetime
    gpu_utilization: float = Field(ge=0, le=100)
    memory_used_mb: int = Field(ge=0)
    memory_total_mb: int = Field(ge=0)
    power_usage_w: float | None = None
    temperature_c: float | None = None
    # The job (and so the organization) holding the GPU when sampled; None when idle.
    job_id: UUID | None = None
    organization_id: UUID | None = None


class GpuMetricsSampledV1(BaseModel):
    node_id: UUID
    samples: list[GpuSampleV1]


EVENT_TYPES: dict[str, type[BaseModel]] = {GPU_METRICS_SAMPLED: GpuMetricsSampledV1}
