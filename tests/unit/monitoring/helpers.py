"""Builders shared by monitoring's unit tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from prometheus_client import REGISTRY

from services.monitoring.domain.allocations import Hold
from services.monitoring.domain.samples import GpuSample
from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1, GpuSampleV1
from shared.events import Envelope

NODE = uuid.uuid4()  # the node every test sample comes from unless told otherwise


def sample(
    gpu_id: uuid.UUID,
    at: datetime,
    util: float = 50.0,
    org: uuid.UUID | None = None,
    name: str = "GPU 0",
    node: uuid.UUID = NODE,
) -> GpuSample:
    """``org``: what the agent claims (it decides nothing; a hold does, see :func:`hold`)."""
    return GpuSample(
        node_id=node,
        gpu_id=gpu_id,
        gpu_name=name,
        gpu_type="a100",
        timestamp=at,
        gpu_utilization=util,
        memory_used_mb=int(util) * 100,
        memory_total_mb=40_960,
        claimed_organization_id=org,
        claimed_job_id=uuid.uuid4() if org else None,
    )


def hold(
    gpu_id: uuid.UUID,
    org: uuid.UUID,
    start: datetime,
    end: datetime | None = None,
    *,
    job: uuid.UUID | None = None,
    attempt: int = 1,
    node: uuid.UUID | None = NODE,
    project: uuid.UUID | None = None,
) -> Hold:
    return Hold(job or uuid.uuid4(), attempt, gpu_id, node, org, project, start, end)


def record(samples: list[GpuSampleV1], node: uuid.UUID | None = None) -> Envelope:
    return Envelope(
        type=GPU_METRICS_SAMPLED,
        source="gpufleet/agent",
        data=GpuMetricsSampledV1(node_id=node or uuid.uuid4(), samples=samples),
    )


def wire_sample(
    gpu_id: uuid.UUID, at: datetime, util: float = 50.0, org: uuid.UUID | None = None
) -> GpuSampleV1:
    return GpuSampleV1(
        gpu_id=gpu_id,
        gpu_name="GPU 0",
        gpu_type="a100",
        timestamp=at,
        gpu_utilization=util,
        memory_used_mb=1000,
        memory_total_mb=40_960,
        power_usage_w=200.0,
        temperature_c=60.0,
        organization_id=org,
        job_id=uuid.uuid4() if org else None,
    )


def metric(name: str) -> float:
    """A sample of the default registry (0 before the first observation)."""
    return REGISTRY.get_sample_value(name) or 0.0
