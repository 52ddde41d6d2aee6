"""Transactional outbox: events written with the change, published after commit by a relay.

``record(session, topic, envelope, key)`` adds the event row inside the caller's transaction; nothing
is sent on rollback. :class:`OutboxRelay` publishes unpublished rows in id order and marks them
published; it is one loop per process, and the relays of one schema take turns under an advisory lock,
so rows go out in the order they were written (per key, that is commit order: writers of one key are
serialized by the row they change).

**Replay window.** Rows are kept for :data:`REPLAY_WINDOW` (7 days) after they were *written*
(``created_at``), so that a broker that lost data can be refilled. Consumers' ledgers
(``processed_events``) are kept at least that long (:func:`shared.consumers.prune_processed_events`
refuses less), so a replayed event is recognised and counts nothing twice. The window is measured from
``created_at`` on both sides because a row is consumed only after it was written; a replay re-publishes
only rows still inside the window, whatever the pruning lag.

**Detecting data loss**:

* the marker: the relay keeps a record on its own marker topic; if that topic is empty or gone, the
  broker came back without its data, and the whole window is re-published. The marker is looked at
  before *every* batch (one ListOffsets request), because a row sent to a broker that restarted empty
  would reach consumers ahead of the older rows the replay then brings back;
* the offsets, on the check cadence (``marker_check_seconds``): the relay remembers, per
  topic-partition, the first offset the broker acknowledged in its latest round of sends there
  (``RecordMetadata.offset``). A partition whose end offset is now at or below that offset — or a topic that vanished — has lost records the broker had acknowledged, even if the
  marker survived (a topic deleted and re-created, an unclean leader election); that topic's window is
  re-published. The *first* offset of the round, not the last, because the embedded broker reports a
  partition's end as the start of its last record batch plus one; with Apache Kafka either works.
  What this misses: loss while no relay of this process was running (only the marker covers it) and loss
  hidden by other producers writing the partition back above that offset before the next check.

**Replay order.** Consumers skip an event they applied already, so what they see first is what counts:
a replay must not let a newer row overtake an older one. A replay clears ``published_at`` on the window's rows under the same advisory lock the
publisher holds, so it never interleaves with a batch in flight on another replica; the loop then
publishes the lowest unpublished ids first, so every replayed row goes out before any newer row (of its
key or any other) written before or during the replay.

**Observability**: ``broker_connected``, ``published_total``, ``replays`` on the relay;
:func:`outbox_backlog`; the ``gpufleet_outbox_*`` metrics of :mod:`shared.event_metrics`, refreshed on the
check cadence. During a replay the backlog's oldest age is that of the oldest replayed row (days).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from shared import event_metrics, telemetry
from shared.contracts import topics
from shared.db import Database
from shared.events import Envelope
from shared.failures import is_unavailable
from shared.kafka import client_security, ensure_topics, make_producer, topic_partitions
from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.outbox")

REPLAY_WINDOW = timedelta(days=7)
DISCONNECT_SECONDS = 5.0

# The relays of one schema take turns under a transaction-scoped advisory lock. The lock is tried once
# (a subquery in FROM with a volatile function is evaluated once, never pulled up) and the batch read
# only when it was granted.
_TAKE_BATCH = text(
    "SELECT o.id, o.topic, o.key, o.headers, o.payload "
    "FROM (SELECT pg_try_advisory_xact_lock(hashtext(:k)) AS got) AS turn "
    "CROSS JOIN LATERAL (SELECT id, topic, key, headers, payload FROM outbox "
    "WHERE turn.got AND published_at IS NULL ORDER BY id LIMIT :n) AS o"
)

_INSERT = text(
    "INSERT INTO outbox (event_id, topic, key, event_type, headers, payload) "
    "VALUES (:event_id, :topic, :key, :event_type, CAST(:headers AS jsonb), :payload)"
)


ROW_COLUMNS = ("event_id", "topic", "key", "event_type", "headers", "payload")


def row(topic: str, envelope: Envelope, key: str | None, trace: dict[str, str]) -> tuple[Any, ...]:
    """An outbox row's values in :data:`ROW_COLUMNS` order, with ``trace`` (:func:`telemetry.inject`)
    among its headers: for writers that insert rows with their own statement (the scheduler's batches)."""
    headers = json.dumps({k: v.decode() for k, v in envelope.headers(trace)})
    return (envelope.id, topic, key, envelope.type, headers, envelope.value())


async def record(session: AsyncSession, topic: str, envelope: Envelope, key: str | None = None) -> None:
    """Add ``envelope`` to the outbox in the caller's transaction, with the current trace context."""
    await record_many(session, topic, [(envelope, key)])


async def record_many(
    session: AsyncSession, topic: str, envelopes: Sequence[tuple[Envelope, str | None]]
) -> None:
    """:func:`record` for many ``(envelope, key)`` pairs in one statement (a batch's events)."""
    if not envelopes:
        return
    trace = telemetry.inject()
    rows = [
        dict(zip(ROW_COLUMNS, row(topic, envelope, key, trace), strict=True)) for envelope, key in envelopes
    ]
    await session.execute(_INSERT, rows)
    session.info["outbox_dirty"] = True


async def outbox_backlog(db: Database) -> tuple[int, float | None]:
    """Unpublished outbox rows and the age in seconds of the oldest one (None when there are none)."""
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), "
                    "extract(epoch FROM now() - (SELECT created_at FROM outbox WHERE published_at IS NULL "
                    "ORDER BY id LIMIT 1))"
                )
            )
        ).one()
    return int(row[0]), (max(0.0, float(row[1])) if row[1] is not None else None)


class _BrokerLostData(Exception):
    """The marker vanished between checks: replay before sending anything else."""


def lost_topics(
    first_acked: dict[TopicPartition, int], end_offsets: dict[TopicPartition, int], existing: set[str]
) -> set[str]:
    """Topics that lost records the broker had acknowledged (see the module docstring)."""
    lost = {tp.topic for tp in first_acked if tp.topic not in existing}
    for tp, offset in first_acked.items():
        end = end_offsets.get(tp)
        if tp.topic in existing and (end is None or end <= offset):
            lost.add(tp.topic)
    return lost


async def _send_in_its_trace(producer: AIOKafkaProducer, row: Any) -> Any:
    """Send one outbox row inside the trace context stored with it, so the event stays in the trace of
    the request that wrote it: the producer span (aiokafka instrumentation) is that request's child and the
    ``traceparent`` it adds carries the same trace id as the stored one. Without recorded spans the
    stored ``traceparent`` goes out unchanged (the same trace id)."""
    send = producer.send(
        row.topic,
        value=bytes(row.payload),
        key=row.key.encode() if row.key else None,
        headers=[(k, str(v).encode()) for k, v in row.headers.items()],
    )
    if not telemetry.recording():  # no producer span: the stored headers are sent as they are
        return await send
    token = otel_context.attach(telemetry.extract(row.headers))
    try:
        return await send
    finally:
        otel_context.detach(token)


class OutboxRelay:
    """Publishes one schema's outbox (see the module docstring); ``await relay.run(stop)``.

    Reports for the runtime: ``broker_connected`` (its clients are up and the last send or metadata call
    succeeded), ``published_total`` (rows the broker acknowledged, re-publishes included) and ``replays``.
    ``retention`` may be shorter than :data:`REPLAY_WINDOW`, never longer."""

    def __init__(
        self,
        db: Database,
        kafka: KafkaSettings,
        *,
        publishes: tuple[str, ...],
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        marker_check_seconds: float = 5.0,
        retention: timedelta = REPLAY_WINDOW,
        retry_initial: float = 0.5,
        retry_max: float = 5.0,  # after an outage, back within seconds of the broker (consumers: 5 s too)
    ) -> None:
        if retention > REPLAY_WINDOW:
            raise ValueError(
                f"outbox retention {retention} exceeds the replay window {REPLAY_WINDOW} that consumers' "
                "ledgers are kept for: a replay could apply an event twice"
            )
        self.db = db
        self.kafka = kafka
        self.publishes = publishes
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.marker_check_seconds = marker_check_seconds
        self.retention = retention
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._lock_key = f"gpufleet-outbox-{db.schema}"
        self.marker_topic = topics.outbox_marker(db.schema)
        self.broker_connected = False
        self.published_total = 0
        self.replays = 0
        self._first_acked: dict[TopicPartition, int] = {}
        # Topics made (or found) on the broker this connection: nothing is created by sending to it
        # (shared.kafka), and a row may name a topic outside ``publishes`` (one a build no longer declares).
        self._created: set[str] = set()
        self._producer: AIOKafkaProducer | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._next_check = 0.0
        self._published_metric = event_metrics.OUTBOX_PUBLISHED.labels(schema=db.schema)

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then publish what is left (as long as the broker answers).

        Each round (connect if needed, check for data loss when due, publish one batch, wait for a
        commit or ``poll_seconds``) is retried with capped exponential backoff; a round that succeeds
        resets the backoff. Nothing here is fatal: a relay outlives any outage of the broker or database."""
        try:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # raised only once stop is set: the loop ends
                    async for attempt in AsyncRetrying(
                        retry=retry_if_exception_type(Exception),
                        wait=wait_exponential_jitter(multiplier=self.retry_initial, max=self.retry_max),
                        stop=lambda _state: stop.is_set(),
                        sleep=lambda seconds: _sleep_unless(stop, seconds),
                        before_sleep=self._after_failure,
                        reraise=True,
                    ):
                        with attempt:
                            await self._round(stop)
            await self._drain()
        finally:
            await self._disconnect()

    async def _round(self, stop: asyncio.Event) -> None:
        if stop.is_set():
            return
        if self._producer is None:
            await self._connect()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_check:
            await self.check_broker()
            await self._prune()
            await self._refresh_backlog()
            self._next_check = loop.time() + self.marker_check_seconds
        # Cleared before reading, so a commit landing during the batch wakes the next wait at once.
        self.db.outbox_written.clear()
        assert self._producer is not None
        try:
            sent = await self.publish_batch(self._producer)
        except _BrokerLostData:
            await self.check_broker()
            return
        if sent == self.batch_size:
            return
        waits = [asyncio.ensure_future(self.db.outbox_written.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _drain(self) -> None:
        if self._producer is None:
            return
        try:
            while await self.publish_batch(self._producer) == self.batch_size:
                pass
        except Exception:
            log.warning("outbox relay stopped with events left unpublished", exc_info=True)

    async def _after_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "outbox relay round failed; retrying",
            exc_info=None if exc is None or is_unavailable(exc) else exc,  # an outage needs no traceback
            extra={"schema": self.db.schema, "attempt": state.attempt_number, "error": repr(exc)},
        )
        # A database outage says nothing about the broker clients (and they reconnect on their own);
        # anything else may have left them in a bad state: start them afresh.
        database_side = isinstance(exc, SQLAlchemyError) or (
            exc is not None and is_unavailable(exc) and not isinstance(exc, KafkaError)
        )
        if not database_side:
            await self._disconnect()

    async def _connect(self) -> None:
        self._created.clear()
        await ensure_topics(self.kafka, self.publishes)
        self._created.update(self.publishes)
        await ensure_topics(self.kafka, (self.marker_topic,), partitions=1)
        bootstrap = self.kafka.kafka_bootstrap_servers
        client_id = f"outbox-{self.db.schema}"
        self._producer = make_producer(self.kafka, client_id)
        self._probe = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            enable_auto_commit=False,
            request_timeout_ms=15000,
            **client_security(self.kafka),
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=client_id, **client_security(self.kafka)
        )
        try:
            await self._producer.start()
            await self._probe.start()
            await self._admin.start()
        except BaseException:
            await self._disconnect()  # a half-started set of clients is never kept
            raise
        self.broker_connected = True
        self._next_check = 0.0  # check for data loss before the first batch of this connection

    async def _disconnect(self) -> None:
        # Bounded: a producer's stop flushes what it holds, and with the broker gone (or a topic it sends
        # to missing) that never ends; what it held is unpublished in the table and goes out again.
        for client in (self._producer, self._probe):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), DISCONNECT_SECONDS)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._admin.close(), DISCONNECT_SECONDS)
        self._producer = self._probe = None
        self._admin = None
        self.broker_connected = False

    # ------------------------------------------------------------------ publishing

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        """Publish up to ``batch_size`` rows; returns how many. At-least-once: a crash between send
        and commit re-sends those rows on the next run."""
        async with self.db.transaction(system=True) as session:
            # The turn and the batch in one statement: no row unless this relay holds the schema's lock.
            rows = (await session.execute(_TAKE_BATCH, {"k": self._lock_key, "n": self.batch_size})).all()
            if not rows:
                return 0  # another relay's turn, or nothing to publish
            if self._probe is not None and not await self._marker_present():
                # Checked before every batch, not only on the check cadence: a row sent to a broker that
                # lost its data would reach consumers ahead of the older rows the replay brings back.
                raise _BrokerLostData()
            if unknown := {row.topic for row in rows} - self._created:
                await ensure_topics(self.kafka, sorted(unknown))
                self._created |= unknown
            futures = [await _send_in_its_trace(producer, row) for row in rows]
            acked = await asyncio.gather(*futures)
            self.broker_connected = True
            await session.execute(
                text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)"),
                {"ids": [row.id for row in rows]},
            )
        self._remember(acked)
        self.published_total += len(rows)
        self._published_metric.inc(len(rows))
        return len(rows)

    def _remember(self, acked: Iterable[Any]) -> None:
        first: dict[TopicPartition, int] = {}
        for meta in acked:
            tp = TopicPartition(meta.topic, meta.partition)
            first[tp] = min(first.get(tp, meta.offset), meta.offset)
        self._first_acked.update(first)

    # ------------------------------------------------------------------ data loss and replay

    async def _marker_present(self) -> bool:
        assert self._probe is not None
        marker = TopicPartition(self.marker_topic, 0)
        return bool((await self._probe.end_offsets([marker]))[marker] > 0)

    async def check_broker(self) -> None:
        """Re-publish the window when the marker is gone (all topics) or acknowledged records vanished
        from a partition (that topic)."""
        assert self._producer is not None and self._probe is not None and self._admin is not None
        existing = set(await self._admin.list_topics())
        self.broker_connected = True
        marker = TopicPartition(self.marker_topic, 0)
        marker_seen = self.marker_topic in existing and (await self._probe.end_offsets([marker]))[marker] > 0
        if not marker_seen:
            await self._replay(None, "broker has no outbox marker (it lost its data)")
            await ensure_topics(self.kafka, (self.marker_topic,), partitions=1)
            await self._producer.send_and_wait(
                self.marker_topic, value=b"{}", key=self.db.schema.encode(), partition=0
            )
            return
        remembered = dict(self._first_acked)
        if not remembered:
            return
        present = set(await topic_partitions(self._admin, {tp.topic for tp in remembered}))
        ends = await self._probe.end_offsets([tp for tp in remembered if tp in present])
        lost = lost_topics(remembered, ends, {tp.topic for tp in present} & existing)
        if lost:
            await self._replay(tuple(sorted(lost)), "broker lost acknowledged records")

    async def _replay(self, only: tuple[str, ...] | None, why: str) -> int:
        """Mark the window's published rows (of ``only`` topics, or all) unpublished, under the
        publishers' lock, so that they go out again before anything newer."""
        where = "published_at IS NOT NULL AND created_at >= now() - make_interval(secs => :s)"
        params: dict[str, Any] = {"s": self.retention.total_seconds()}
        if only is not None:
            where += " AND topic = ANY(:topics)"
            params["topics"] = list(only)
        async with self.db.transaction(system=True) as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": self._lock_key})
            result = await session.execute(
                text(f"UPDATE outbox SET published_at = NULL WHERE {where}"), params
            )
        replayed = int(getattr(result, "rowcount", 0) or 0)
        # The old offsets mean nothing on the refilled partitions: the re-sends set new ones.
        for tp in list(self._first_acked):
            if only is None or tp.topic in only:
                del self._first_acked[tp]
        # The broker lost those topics too: made again before anything is sent to them.
        if only is None:
            self._created.clear()
        else:
            self._created.difference_update(only)
        if replayed:
            self.replays += 1
            event_metrics.OUTBOX_REPLAYS.labels(schema=self.db.schema).inc()
            log.warning(
                f"{why}; re-publishing retained events",
                extra={"schema": self.db.schema, "events": replayed, "topics": list(only or ())},
            )
            await ensure_topics(self.kafka, only or self.publishes)
            self._created.update(only or self.publishes)
        return replayed

    async def _prune(self) -> None:
        """Drop published rows older than the window (on the check cadence, not per batch)."""
        async with self.db.transaction(system=True) as session:
            await session.execute(
                text(
                    "DELETE FROM outbox WHERE published_at IS NOT NULL "
                    "AND created_at < now() - make_interval(secs => :s)"
                ),
                {"s": self.retention.total_seconds()},
            )

    async def _refresh_backlog(self) -> None:
        count, age = await outbox_backlog(self.db)
        event_metrics.OUTBOX_BACKLOG.labels(schema=self.db.schema).set(count)
        event_metrics.OUTBOX_OLDEST_AGE.labels(schema=self.db.schema).set(age or 0.0)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
