"""Domain events -> the public contract on ``gpufleet.fleet.v1`` (shared/contracts/fleet.py)."""

from __future__ import annotations

from shared.contracts import fleet as contract
from shared.events import Envelope

from ..domain.events import GpuEvent, GpuRegistered

SOURCE = "gpufleet/fleet"


def to_envelope(event: GpuEvent) -> Envelope[contract.GpuChangedV1]:
    gpu = event.gpu
    payload = contract.GpuChangedV1(
        gpu=contract.GpuSnapshotV1(
            gpu_id=gpu.gpu_id,
            node_id=gpu.node_id,
            node_name=gpu.node_name,
            index=gpu.index,
            uuid=gpu.uuid,
            name=gpu.name,
            gpu_type=gpu.gpu_type,
            memory_total_mb=gpu.memory_total_mb,
            cost_per_hour=gpu.cost_per_hour,
            provider=gpu.provider,
            is_spot=gpu.is_spot,
            organization_id=gpu.organization_id,
            status=gpu.status,  # type: ignore[arg-type]
            revision=gpu.revision,
            changed_at=gpu.changed_at,
            node_cpu_cores=gpu.node_cpu_cores,
            node_ram_mb=gpu.node_ram_mb,
            node_labels=dict(gpu.node_labels),
        ),
        reason=event.reason,
    )
    return Envelope(
        type=contract.GPU_REGISTERED if isinstance(event, GpuRegistered) else contract.GPU_STATUS_CHANGED,
        source=SOURCE,
        data=payload,
        subject=str(gpu.gpu_id),
        organization_id=str(gpu.organization_id) if gpu.organization_id else None,
        time=gpu.changed_at,
    )
