"""Kafka consumer of ``gpufleet.audit.v1``: every other service's audit records into the one log.

A pure converter (:func:`to_command`, no I/O) plus the handler as sink; the handler claims the events in
the ledger in the same transaction as the rows, so a redelivered or replayed record is stored once. A
batch is one transaction (a submit burst makes one record per job: one statement each would cost
identity more CPU than the submits themselves)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from shared.consumers import subscribe_batch
from shared.contracts import audit, topics
from shared.events import Envelope, MalformedEvent

from ..domain.audit import Actor, AuditRecord
from ..service_layer.audit import CONSUMER
from ..service_layer.commands import RecordAudit, RecordAudits
from ..service_layer.handlers import Dependencies, handle


def to_command(envelope: Envelope) -> RecordAudit:
    data = envelope.data
    if not isinstance(data, audit.AuditRecordedV1):  # decoded with audit.EVENT_TYPES: anything else is a bug
        raise TypeError(f"expected AuditRecordedV1, got {type(data).__name__}")
    if topics.source_of(envelope.source) != data.service:
        # A producer may write the topic, not speak for another service (the source is checked already).
        raise MalformedEvent(f"record of service {data.service!r} sent by {envelope.source!r}")
    a = data.actor
    return RecordAudit(
        event_id=envelope.id,
        record=AuditRecord(
            organization_id=data.organization_id,
            actor=Actor(
                kind=a.kind,
                user_id=a.user_id,
                api_key_id=a.api_key_id,
                operator_name=a.operator_name,
                node_id=a.node_id,
            ),
            service=data.service,
            action=data.action,
            target_type=data.target_type,
            target_id=data.target_id,
            before=data.before,
            after=data.after,
            request_id=data.request_id,
            at=data.at,
        ),
    )


def audit_handler(deps: Dependencies) -> Callable[[list[Envelope]], Awaitable[None]]:
    async def sink(envelopes: list[Envelope]) -> None:
        await handle(RecordAudits(tuple(to_command(e) for e in envelopes)), deps)

    return sink


def register(
    broker: KafkaBroker, deps: Dependencies, *, topic: str = topics.AUDIT, group_id: str = CONSUMER
) -> None:
    """``topic`` and ``group_id`` are overridable so that tests read without joining the service's group.
    A record whose producer speaks for another service fails its batch, which is then split until that
    record stands alone and is dead-lettered (shared.consumers); the others are stored."""
    subscribe_batch(broker, topic, group_id=group_id, models=audit.EVENT_TYPES, handle=audit_handler(deps))
