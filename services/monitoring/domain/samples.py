"""A GPU metric sample as monitoring keeps it. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU's readings at one instant; (gpu_id, timestamp) is its identity, so the same sample
    delivered twice is the same sample."""

    node_id: UUID
    gpu_id: UUID
    gpu_name: str
    gpu_type: str
    timestamp: datetime
    gpu_utilization: float
    memory_used_mb: int
    memory_total_mb: int
    power_usage_w: float | None = None
    temperature_c: float | None = None
    # What the agent says was holding the GPU (None: idle). Only compared with the allocation for a
    # warning: whose a sample is comes from the allocation history (domain/allocations.py).
    claimed_job_id: UUID | None = None
    claimed_organization_id: UUID | None = None
