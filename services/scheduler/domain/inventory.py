"""The scheduler's view of one GPU, projected from fleet's inventory events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

# A node label naming the address a gang's other members reach this node at for the rendezvous
# (e.g. its address on the training fabric); without it, the host name its agent registered with.
ADDRESS_LABEL = "gpufleet.io/address"


@dataclass(frozen=True)
class InventoryGpu:
    gpu_id: UUID
    node_id: UUID
    node_name: str
    device_index: int
    gpu_type: str
    memory_total_mb: int
    cost_per_hour: Decimal
    organization_id: UUID | None  # None: shared pool
    status: str  # fleet's health/administrative state; only 'available' GPUs are offered to placement
    revision: int  # fleet's revision; an event older than what we hold is ignored
    # The node's capacity and fabric labels as its agent reported them (0 / empty: not reported).
    node_cpu_cores: int = 0
    node_ram_mb: int = 0
    node_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def rendezvous_address(self) -> str:
        """Where the members of a gang placed on this node reach it (``MASTER_ADDR`` of rank 0)."""
        return self.node_labels.get(ADDRESS_LABEL) or self.node_name

    @property
    def schedulable(self) -> bool:
        """Healthy for placement: fleet's 'allocated' only mirrors our own allocations."""
        return self.status in ("available", "allocated")
