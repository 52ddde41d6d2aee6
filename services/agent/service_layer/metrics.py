"""Turn GPU readings into the ``gpufleet.metrics.v1`` payload (one record per node per tick)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

from shared.contracts.metrics import GpuMetricsSampledV1, GpuSampleV1

from ..domain.model import GpuReading, LocalJob, Registration


def gpu_name(hostname: str, index: int) -> str:
    """Fallback for a fleet that predates ``RegisteredGpu.name`` (it names GPUs ``<hostname>-gpu<index>``)."""
    return f"{hostname}-gpu{index}"


def build_sample(
    reg: Registration,
    hostname: str,
    readings: Sequence[GpuReading],
    holders: Mapping[int, LocalJob],
    at: datetime,
) -> GpuMetricsSampledV1:
    """Readings of GPUs fleet registered; a GPU that could not be read is left out of this tick (its
    unhealthiness travels with the heartbeat instead)."""
    registered = {g.index: g for g in reg.gpus}
    samples = []
    for r in readings:
        gpu = registered.get(r.index)
        if gpu is None or r.error:
            continue
        job = holders.get(r.index)
        samples.append(
            GpuSampleV1(
                gpu_id=UUID(gpu.gpu_id),
                gpu_name=gpu.name or gpu_name(hostname, r.index),
                gpu_type=gpu.gpu_type,
                timestamp=at,
                gpu_utilization=min(max(r.utilization, 0.0), 100.0),
                memory_used_mb=max(r.memory_used_mb, 0),
                memory_total_mb=max(r.memory_total_mb, 0),
                power_usage_w=r.power_w,
                temperature_c=r.temperature_c,
                job_id=_uuid_or_none(job.job_id) if job else None,
                organization_id=_uuid_or_none(job.organization_id) if job else None,
            )
        )
    return GpuMetricsSampledV1(node_id=UUID(reg.node_id), samples=samples)


def _uuid_or_none(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None
