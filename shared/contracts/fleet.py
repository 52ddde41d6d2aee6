"""Internal fleet topic contract (``gpufleet.fleet.v1``): inventory facts other services project."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

GPU_REGISTERED = "gpufleet.gpu.registered"
GPU_STATUS_CHANGED = "gpufleet.gpu.status_changed"

GpuStatus = Literal["available", "allocated", "draining", "unhealthy", "offline"]

# A node label its agent sets to the container runtime it runs jobs naming an image with ("podman",
# "docker"): the scheduler places such jobs only on nodes with it (non-empty). An operator's join-token
# label of this name wins over the agent's; set to "" it keeps image jobs off the node.
CONTAINER_RUNTIME_LABEL = "gpufleet.io/container-runtime"


class GpuSnapshotV1(BaseModel):
    gpu_id: UUID
    node_id: UUID
    node_name: str
    index: int
    uuid: str
    name: str
    gpu_type: str
    memory_total_mb: int
    cost_per_hour: Decimal
    provider: str
    is_spot: bool = False
    organization_id: UUID | None = None  # None: shared pool
    # Fleet-owned health/administrative state; allocation is the scheduler's business.
    status: GpuStatus
    revision: int  # increases with every change; consumers ignore a revision they have passed
    changed_at: datetime
    # The node's capacity and labels, as its agent reported them (0 / empty: not reported).
    node_cpu_cores: int = 0
    node_ram_mb: int = 0
    node_labels: dict[str, str] = Field(default_factory=dict)


class GpuChangedV1(BaseModel):
    gpu: GpuSnapshotV1
    reason: str | None = None


EVENT_TYPES: dict[str, type[BaseModel]] = {GPU_REGISTERED: GpuChangedV1, GPU_STATUS_CHANGED: GpuChangedV1}
