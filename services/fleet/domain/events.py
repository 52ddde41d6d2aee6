"""Events the fleet domain records. They carry health and inventory, never allocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True)
class GpuSnapshot:
    """A GPU as other services may know it (no job ids, no allocation bookkeeping)."""

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
    is_spot: bool
    organization_id: UUID | None
    status: str  # inventory/health status (fleet keeps no allocations)
    revision: int
    changed_at: datetime
    node_cpu_cores: int = 0
    node_ram_mb: int = 0
    node_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuRegistered:
    """A GPU appeared or its inventory facts changed (type, price, owner, node, ...)."""

    gpu: GpuSnapshot
    reason: str | None = None


@dataclass(frozen=True)
class GpuStatusChanged:
    """A GPU's health changed: unhealthy, offline, or back."""

    gpu: GpuSnapshot
    reason: str | None = None


GpuEvent = GpuRegistered | GpuStatusChanged
