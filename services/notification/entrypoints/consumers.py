"""Kafka consumers of the public job and cost topics: a pure converter (event -> command) plus the
handler as sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe_batch
from shared.contracts import costs, jobs, topics
from shared.events import Envelope

from ..service_layer import commands, handlers
from ..service_layer.handlers import COST_CONSUMER, JOB_CONSUMER, Dependencies


def to_command(envelope: Envelope) -> commands.NotifyJobEvent:
    """No I/O: the snapshot as JSON values is exactly what the webhook body carries as ``data``. The
    event is turned into JSON values once; its ``job`` part is the snapshot's."""
    event: jobs.JobEventV1 = envelope.data  # type: ignore[assignment]
    job = event.job
    payload = event.model_dump(mode="json")
    return commands.NotifyJobEvent(
        event_id=envelope.id,
        event_type=envelope.type,
        occurred_at=envelope.time,
        organization_id=job.organization_id,
        job_id=job.job_id,
        webhook_url=job.webhook_url or None,
        job=payload["job"],
        source=envelope.source,
        subject=envelope.subject,
        payload=payload,
        project_id=job.project_id,
    )


def to_cost_command(envelope: Envelope) -> commands.NotifyCostEvent:
    """No I/O: the cost record as JSON values is what both the webhook body and the log carry."""
    event: costs.CostRecordedV1 = envelope.data  # type: ignore[assignment]
    return commands.NotifyCostEvent(
        event_id=envelope.id,
        event_type=envelope.type,
        occurred_at=envelope.time,
        organization_id=event.organization_id,
        job_id=event.job_id,
        source=envelope.source,
        subject=envelope.subject,
        payload=event.model_dump(mode="json"),
        project_id=event.project_id,
    )


def job_event_handler(deps: Dependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    """The sink of a batch: idempotent, since the handler claims each event id with its deliveries."""

    async def sink(envelopes: list[Envelope]) -> None:
        await handlers.handle(commands.NotifyEvents(tuple(to_command(e) for e in envelopes)), deps)

    return sink


def cost_event_handler(deps: Dependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    """The sink of the cost topic: idempotent like the job one (its own consumer name in the ledger)."""

    async def sink(envelopes: list[Envelope]) -> None:
        await handlers.handle(commands.NotifyEvents(tuple(to_cost_command(e) for e in envelopes)), deps)

    return sink


def register(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.JOBS, group_id: str = JOB_CONSUMER
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read a topic of their own without
    rebalancing the service's group (the processed-event ledger keeps the consumer name either way).
    Records come in batches: one transaction and one offset commit per batch, not per event."""
    subscribe_batch(broker, topic, group_id=group_id, models=jobs.EVENT_TYPES, handle=job_event_handler(deps))


def register_costs(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.COSTS, group_id: str = COST_CONSUMER
) -> None:
    subscribe_batch(
        broker, topic, group_id=group_id, models=costs.EVENT_TYPES, handle=cost_event_handler(deps)
    )
