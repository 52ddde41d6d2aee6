"""Kafka consumer of the metrics topic: a pure converter (batch of records -> one command) plus the
handler as sink, so a whole batch is one insert."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import RecordVerifier, subscribe_batch
from shared.contracts import metrics, topics
from shared.events import Envelope

from ..domain.samples import GpuSample
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, handle

CONSUMER = "monitoring.metrics"


def samples_of(record: metrics.GpuMetricsSampledV1) -> list[GpuSample]:
    return [
        GpuSample(
            node_id=record.node_id,
            gpu_id=s.gpu_id,
            gpu_name=s.gpu_name,
            gpu_type=s.gpu_type,
            timestamp=s.timestamp,
            gpu_utilization=s.gpu_utilization,
            memory_used_mb=s.memory_used_mb,
            memory_total_mb=s.memory_total_mb,
            power_usage_w=s.power_usage_w,
            temperature_c=s.temperature_c,
            claimed_job_id=s.job_id,
            claimed_organization_id=s.organization_id,
        )
        for s in record.samples
    ]


def to_command(envelopes: list[Envelope]) -> commands.IngestSamples | None:
    """No I/O. Every sample of every metrics record, in order; None when the batch holds none."""
    samples = [
        sample
        for e in envelopes
        if isinstance(e.data, metrics.GpuMetricsSampledV1)
        for sample in samples_of(e.data)
    ]
    return commands.IngestSamples(tuple(samples)) if samples else None


def metrics_batch_handler(deps: Dependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    async def sink(envelopes: list[Envelope]) -> None:
        cmd = to_command(envelopes)
        if cmd is not None:
            await handle(cmd, deps)

    return sink


def register(
    broker: KafkaBroker,
    deps: Dependencies,
    *,
    topic: str = topics.METRICS,
    group_id: str = CONSUMER,
    verify: RecordVerifier | None = None,
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read without joining the service's group;
    ``verify``: the check of the agents' signatures (None: every well-formed record is taken)."""
    subscribe_batch(
        broker,
        topic,
        group_id=group_id,
        models=metrics.EVENT_TYPES,
        handle=metrics_batch_handler(deps),
        verify=verify,
    )
