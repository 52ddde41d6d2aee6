"""Kafka consumer of the public job topic: a pure converter (event -> command) plus the handler as sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import jobs, topics
from shared.events import Envelope

from ..domain.costs import FinishedJob, HeldGpu
from ..service_layer import commands
from ..service_layer.handlers import CONSUMER, Dependencies, handle


def finished_job(job: jobs.JobSnapshotV1) -> FinishedJob:
    return FinishedJob(
        job_id=job.job_id,
        organization_id=job.organization_id,
        user_id=job.user_id,
        allocation=tuple(HeldGpu(g.gpu_id, g.gpu_type, g.cost_per_hour) for g in job.allocation),
        scheduled_at=job.scheduled_at,
        finished_at=job.finished_at,
    )


def to_command(envelope: Envelope) -> commands.RecordJobCost | None:
    """No I/O. Only a terminal event ends the time a job holds its GPUs; the others are not billing's
    business (and are not claimed either)."""
    if envelope.type not in jobs.TERMINAL_EVENTS:
        return None
    event = envelope.data
    if not isinstance(event, jobs.JobEventV1):  # decoded with jobs.EVENT_TYPES: anything else is a bug
        raise TypeError(f"expected JobEventV1, got {type(event).__name__}")
    return commands.RecordJobCost(event_id=envelope.id, job=finished_job(event.job))


def job_event_handler(deps: Dependencies) -> Callable[[Envelope], Awaitable[None]]:
    async def sink(envelope: Envelope) -> None:
        cmd = to_command(envelope)
        if cmd is not None:
            await handle(cmd, deps)

    return sink


def register(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.JOBS, group_id: str = CONSUMER
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read without rebalancing the service's
    group (the processed-event ledger keeps the consumer name either way)."""
    subscribe(broker, topic, group_id=group_id, models=jobs.EVENT_TYPES, handle=job_event_handler(deps))
