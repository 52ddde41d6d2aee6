"""What the entrypoints (and the sweeper) ask of the service layer (already translated from the wire)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from ..domain.model import NodeRegistration


@dataclass(frozen=True)
class RegisterNode:
    registration: NodeRegistration


@dataclass(frozen=True)
class RecordHeartbeat:
    node_id: UUID
    unhealthy_gpu_ids: frozenset[UUID]


@dataclass(frozen=True)
class SweepOfflineNodes:
    """One round of the offline sweep: every silent node, ``batch`` per transaction."""

    batch: int = 100


@dataclass(frozen=True)
class ListGpus:
    organization_id: UUID
    status: str | None = None
    gpu_type: str | None = None


@dataclass(frozen=True)
class ListGpuTypes:
    organization_id: UUID


@dataclass(frozen=True)
class OccupyGpus:
    """A job was scheduled onto these GPUs."""

    event_id: UUID
    job_id: UUID
    gpu_ids: tuple[UUID, ...]
    memory_mb: int


@dataclass(frozen=True)
class ReleaseGpus:
    """A job ended: whatever GPUs it holds are free."""

    event_id: UUID
    job_id: UUID


JobCommand = OccupyGpus | ReleaseGpus
Command = (
    RegisterNode | RecordHeartbeat | SweepOfflineNodes | ListGpus | ListGpuTypes | OccupyGpus | ReleaseGpus
)
