"""Kafka consumer of the public job topic: a pure converter (event -> command) plus the handler as sink."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import jobs, topics
from shared.events import Envelope

from ..bootstrap import FleetApp
from ..service_layer import commands, handlers

GROUP_ID = handlers.JOB_CONSUMER  # "fleet.gpu-allocation"


def to_command(envelope: Envelope) -> commands.JobCommand:
    """What a job event means for fleet's inventory (no I/O: table-tested in the unit tests)."""
    event: jobs.JobEventV1 = envelope.data  # type: ignore[assignment]
    job = event.job
    if envelope.type == jobs.JOB_SCHEDULED:
        return commands.OccupyGpus(
            event_id=envelope.id,
            job_id=job.job_id,
            gpu_ids=tuple(a.gpu_id for a in job.allocation),
            memory_mb=job.gpu_memory_mb,
        )
    if envelope.type in jobs.TERMINAL_EVENTS:
        return commands.ReleaseGpus(event_id=envelope.id, job_id=job.job_id)
    return commands.NoOp(event_id=envelope.id)


def job_event_handler(app: FleetApp):  # type: ignore[no-untyped-def]
    async def handle(envelope: Envelope) -> None:
        await handlers.apply_job_command(to_command(envelope), app.uow)

    return handle


def register_consumers(broker: KafkaBroker, app: FleetApp) -> None:
    subscribe(broker, topics.JOBS, group_id=GROUP_ID, models=jobs.EVENT_TYPES, handle=job_event_handler(app))
