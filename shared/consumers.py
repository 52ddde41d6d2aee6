"""Idempotent event consumption over FastStream.

A consumer is *a pure converter plus a sink*: :func:`subscribe` decodes the CloudEvents envelope,
continues the producer's trace, and calls ``handle(envelope)``. The handler applies its effect in a
transaction that also calls :func:`claim` — the ledger row of processed event ids — so an event
delivered twice (redelivery after a crash, an outbox replay) has its effect once. An event that can
never be decoded goes to ``<topic>.dlq`` with the reason in the ``x-dlq-reason`` header and is
acknowledged; a handler error (database down, say) is not acknowledged and the event comes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import telemetry
from shared.contracts import topics as topic_names
from shared.events import Envelope, MalformedEvent, decode, header_map

log = logging.getLogger("gpufleet.consumers")

_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id) VALUES (:c, :e) ON CONFLICT DO NOTHING RETURNING 1"
)


async def claim(session: AsyncSession, consumer: str, event_id: UUID) -> bool:
    """Record that ``consumer`` processed ``event_id`` in the caller's transaction.

    Returns False when it was already processed: the caller must then skip the effect."""
    return (await session.execute(_CLAIM, {"c": consumer, "e": event_id})).first() is not None


async def claim_many(session: AsyncSession, consumer: str, event_ids: list[UUID]) -> set[UUID]:
    """Batch form of :func:`claim`: the subset of ``event_ids`` not processed before."""
    if not event_ids:
        return set()
    rows = await session.execute(
        text(
            "INSERT INTO processed_events (consumer, event_id) SELECT :c, unnest(CAST(:ids AS uuid[])) "
            "ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {"c": consumer, "ids": [str(i) for i in event_ids]},
    )
    return {r[0] for r in rows}


async def dead_letter(broker: KafkaBroker, record: object, reason: str) -> None:
    topic = getattr(record, "topic", "unknown")
    headers = header_map(getattr(record, "headers", None) or [])
    headers.update(
        {
            "x-dlq-reason": reason[:1000],
            "x-dlq-source-topic": str(topic),
            "x-dlq-source-offset": str(getattr(record, "offset", "")),
        }
    )
    await broker.publish(
        getattr(record, "value", b"") or b"",
        topic=topic_names.dead_letter(str(topic)),
        key=getattr(record, "key", None),
        headers=headers,
    )
    log.warning("event sent to dead-letter topic", extra={"topic": topic, "reason": reason})


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    models: dict[str, type[BaseModel]],
    handle: Callable[[Envelope], Awaitable[None]],
    retry_delay: float = 1.0,
) -> None:
    """Register ``handle`` for every decodable event on ``topic`` (one at a time, in partition order)."""
    tracer = telemetry.tracer("gpufleet.consumers")

    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        heartbeat_interval_ms=1000,
        session_timeout_ms=10000,
        title=f"{group_id}:{topic}",
    )
    async def _consume(msg: KafkaMessage) -> None:
        record: Any = msg.raw_message
        try:
            envelope = decode(record.headers, record.value, models)
        except MalformedEvent as exc:
            await dead_letter(broker, record, str(exc))
            return
        ctx = telemetry.extract(record.headers)
        with tracer.start_as_current_span(
            f"{topic} process",
            context=ctx,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "cloudevents.event_type": envelope.type},
        ):
            try:
                await handle(envelope)
            except Exception:
                log.exception(
                    "handler failed; the event will be redelivered", extra={"event_id": str(envelope.id)}
                )
                await asyncio.sleep(retry_delay)
                raise


def subscribe_batch(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    models: dict[str, type[BaseModel]],
    handle: Callable[[list[Envelope]], Awaitable[None]],
    max_records: int = 500,
    retry_delay: float = 1.0,
) -> None:
    """Like :func:`subscribe`, but hands over up to ``max_records`` events at once (for bulk inserts)."""

    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=200,
        heartbeat_interval_ms=1000,
        session_timeout_ms=10000,
        title=f"{group_id}:{topic}",
    )
    async def _consume_batch(body: list[Any], msg: KafkaMessage) -> None:  # body: FastStream decoded; unused
        records = msg.raw_message if isinstance(msg.raw_message, tuple | list) else (msg.raw_message,)
        good: list[Envelope] = []
        for record in records:
            try:
                good.append(decode(record.headers, record.value, models))
            except MalformedEvent as exc:
                await dead_letter(broker, record, str(exc))
        if not good:
            return
        try:
            await handle(good)
        except Exception:
            log.exception("batch handler failed; the batch will be redelivered", extra={"events": len(good)})
            await asyncio.sleep(retry_delay)
            raise
