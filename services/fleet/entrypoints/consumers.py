"""Kafka consumer of the public job topic: a pure converter (event -> command or None) plus the
handlers as sink. The sink handlers claim the event id in the unit of work that applies the effect, so
a redelivered event changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import jobs, topics
from shared.events import Envelope

from ..service_layer import commands
from ..service_layer.handlers import JOB_CONSUMER, Dependencies, handle

GROUP_ID = JOB_CONSUMER  # "fleet.gpu-allocation"


def to_command(envelope: Envelope) -> commands.JobCommand | None:
    """What a job event means for fleet's inventory; None: nothing (submitted, started).

    No I/O: table-tested in the unit tests."""
    event = envelope.data
    if not isinstance(event, jobs.JobEventV1):
        return None
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
    return None


def job_event_handler(deps: Dependencies) -> Callable[[Envelope], Awaitable[None]]:
    async def sink(envelope: Envelope) -> None:
        cmd = to_command(envelope)
        if cmd is not None:  # no effect, so nothing to deduplicate: spare the ledger a row
            await handle(cmd, deps)

    return sink


def register_consumers(broker: KafkaBroker, deps: Dependencies) -> None:
    subscribe(broker, topics.JOBS, group_id=GROUP_ID, models=jobs.EVENT_TYPES, handle=job_event_handler(deps))
