"""Transactional outbox: events written with the change, published after commit by a relay.

``record(session, topic, envelope, key)`` adds the event row inside the caller's transaction; nothing
is sent on rollback. :class:`OutboxRelay` publishes unpublished rows in id order (per-key order holds
because one relay per schema works at a time, under an advisory lock), marks them published, and keeps
them for ``retention`` so that a broker that lost its data (the embedded broker keeps topics in memory)
is refilled: the relay writes a marker record to a marker topic and, when that marker disappears,
re-publishes the whole window. Consumers are idempotent, so a replay counts nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import telemetry
from shared.contracts import topics
from shared.db import Database
from shared.events import Envelope
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.outbox")

_INSERT = text(
    "INSERT INTO outbox (event_id, topic, key, event_type, headers, payload) "
    "VALUES (:event_id, :topic, :key, :event_type, CAST(:headers AS jsonb), :payload)"
)


async def record(session: AsyncSession, topic: str, envelope: Envelope, key: str | None = None) -> None:
    """Add ``envelope`` to the outbox in the caller's transaction, with the current trace context."""
    headers = {k: v.decode() for k, v in envelope.headers(telemetry.inject())}
    await session.execute(
        _INSERT,
        {
            "event_id": envelope.id,
            "topic": topic,
            "key": key,
            "event_type": envelope.type,
            "headers": json.dumps(headers),
            "payload": envelope.value(),
        },
    )
    session.info["outbox_dirty"] = True


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        kafka: KafkaSettings,
        *,
        publishes: tuple[str, ...],
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        marker_check_seconds: float = 5.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.kafka = kafka
        self.publishes = publishes
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.marker_check_seconds = marker_check_seconds
        self.retention = retention
        self._lock_key = f"gpufleet-outbox-{db.schema}"
        self.marker_topic = topics.outbox_marker(db.schema)
        self.published_total = 0
        self.replays = 0

    async def run(self, stop: asyncio.Event) -> None:
        producer: AIOKafkaProducer | None = None
        probe: AIOKafkaConsumer | None = None
        loop = asyncio.get_running_loop()
        next_marker_check = 0.0
        while not stop.is_set():
            try:
                if producer is None:
                    await ensure_topics(self.kafka, self.publishes)
                    await ensure_topics(self.kafka, (self.marker_topic,), partitions=1)
                    producer = make_producer(self.kafka, f"outbox-{self.db.schema}")
                    await producer.start()
                    probe = AIOKafkaConsumer(bootstrap_servers=self.kafka.kafka_bootstrap_servers)
                    await probe.start()
                    await self._check_marker(producer, probe)
                    next_marker_check = loop.time() + self.marker_check_seconds
                if loop.time() >= next_marker_check:
                    assert probe is not None
                    await self._check_marker(producer, probe)
                    await self._prune()
                    next_marker_check = loop.time() + self.marker_check_seconds
                sent = await self.publish_batch(producer)
                if sent == self.batch_size:
                    continue
                self.db.outbox_written.clear()
                try:
                    await asyncio.wait_for(self.db.outbox_written.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay error; retrying")
                for client in (producer, probe):
                    if client is not None:
                        try:
                            await client.stop()
                        except Exception:
                            pass
                producer = probe = None
                await asyncio.sleep(1.0)
        for client in (producer, probe):
            if client is not None:
                await client.stop()

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        """Publish up to ``batch_size`` rows; returns how many. At-least-once: a crash between send
        and commit re-sends those rows on the next run."""
        async with self.db.transaction(system=True) as session:
            got = (
                await session.execute(
                    text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": self._lock_key}
                )
            ).scalar()
            if not got:
                return 0
            rows = (
                await session.execute(
                    text(
                        "SELECT id, topic, key, headers, payload FROM outbox WHERE published_at IS NULL "
                        "ORDER BY id LIMIT :n"
                    ),
                    {"n": self.batch_size},
                )
            ).all()
            if not rows:
                return 0
            futures = [
                await producer.send(
                    row.topic,
                    value=bytes(row.payload),
                    key=row.key.encode() if row.key else None,
                    headers=[(k, str(v).encode()) for k, v in row.headers.items()],
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await session.execute(
                text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)"),
                {"ids": [row.id for row in rows]},
            )
        self.published_total += len(rows)
        return len(rows)

    async def _prune(self) -> None:
        """Drop rows published longer ago than the retention window (on the marker cadence, not per batch)."""
        async with self.db.transaction(system=True) as session:
            await session.execute(
                text("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => :s)"),
                {"s": self.retention.total_seconds()},
            )

    async def _check_marker(self, producer: AIOKafkaProducer, probe: AIOKafkaConsumer) -> None:
        """If the marker topic is empty the broker lost its data: re-publish the retention window."""
        tp = TopicPartition(self.marker_topic, 0)
        end = (await probe.end_offsets([tp]))[tp]
        marker_seen = end > 0
        if not marker_seen:
            async with self.db.transaction(system=True) as session:
                result = await session.execute(
                    text("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL")
                )
            replayed = getattr(result, "rowcount", 0)
            if replayed:
                self.replays += 1
                log.warning(
                    "broker has no outbox marker (it lost its data); re-publishing retained events",
                    extra={"schema": self.db.schema, "events": replayed},
                )
                await ensure_topics(self.kafka, self.publishes)
            await ensure_topics(self.kafka, (self.marker_topic,), partitions=1)
            await producer.send_and_wait(
                self.marker_topic, value=b"{}", key=self.db.schema.encode(), partition=0
            )
