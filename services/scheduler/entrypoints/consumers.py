"""Kafka consumer: fleet's inventory events -> the scheduler's GPU projection (then a placement round)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import fleet, topics
from shared.events import Envelope

from ..domain.inventory import InventoryGpu
from ..service_layer import commands, handlers
from ..service_layer.handlers import FLEET_CONSUMER, Dependencies


def to_inventory(gpu: fleet.GpuSnapshotV1) -> InventoryGpu:
    """Pure converter (the sink is the handler)."""
    return InventoryGpu(
        gpu_id=gpu.gpu_id,
        node_id=gpu.node_id,
        node_name=gpu.node_name,
        device_index=gpu.index,
        gpu_type=gpu.gpu_type,
        memory_total_mb=gpu.memory_total_mb,
        cost_per_hour=gpu.cost_per_hour,
        organization_id=gpu.organization_id,
        status=gpu.status,
        revision=gpu.revision,
        node_cpu_cores=gpu.node_cpu_cores,
        node_ram_mb=gpu.node_ram_mb,
        node_labels=dict(gpu.node_labels),
    )


def register(broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.FLEET) -> None:
    """``topic`` is overridable so that tests read a topic of their own, not every fleet event."""

    async def handle(envelope: Envelope) -> None:
        assert isinstance(envelope.data, fleet.GpuChangedV1)
        await handlers.apply_gpu_change(
            commands.ApplyGpuChange(event_id=envelope.id, gpu=to_inventory(envelope.data.gpu)), deps
        )

    subscribe(broker, topic, group_id=FLEET_CONSUMER, models=fleet.EVENT_TYPES, handle=handle)
