"""Kafka consumer of the public job topic: a pure converter (event -> command) plus the handler as sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe
from shared.contracts import jobs, topics
from shared.events import Envelope

from ..service_layer import commands, handlers
from ..service_layer.handlers import JOB_CONSUMER, Dependencies


def to_command(envelope: Envelope) -> commands.NotifyJobEvent:
    """No I/O: the snapshot as JSON values is exactly what the webhook body carries as ``data``."""
    event: jobs.JobEventV1 = envelope.data  # type: ignore[assignment]
    job = event.job
    return commands.NotifyJobEvent(
        event_id=envelope.id,
        event_type=envelope.type,
        occurred_at=envelope.time,
        organization_id=job.organization_id,
        job_id=job.job_id,
        webhook_url=job.webhook_url or None,
        job=job.model_dump(mode="json"),
    )


def job_event_handler(deps: Dependencies) -> Callable[[Envelope], Awaitable[None]]:
    """The sink: idempotent, since ``notify_job_event`` claims the event id with its deliveries."""

    async def sink(envelope: Envelope) -> None:
        await handlers.handle(to_command(envelope), deps)

    return sink


def register(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.JOBS, group_id: str = JOB_CONSUMER
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read a topic of their own without
    rebalancing the service's group (the processed-event ledger keeps the consumer name either way)."""
    subscribe(broker, topic, group_id=group_id, models=jobs.EVENT_TYPES, handle=job_event_handler(deps))
