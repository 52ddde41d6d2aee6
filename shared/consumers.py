"""Idempotent event consumption over FastStream, that never wedges a partition and never drops a record.

A consumer is *a pure converter plus a sink*: :func:`subscribe` decodes the CloudEvents envelope,
continues the producer's trace, and calls ``handle(envelope)``. The handler applies its effect in a
transaction that also calls :func:`claim` — the ledger row of processed event ids — so an event
delivered twice (redelivery after a crash, an outbox replay, a dead-letter re-drive) has its effect once.

What happens when a record cannot be applied (:class:`RetryPolicy`; every loop is tenacity's):

* **Undecodable** (missing CloudEvents headers, unknown type, payload that fails its model): dead-lettered
  at once, outcome ``malformed``.
* **From a producer not allowed on the topic** (its CloudEvents ``source`` names a service that is not
  one of the topic's producers in :data:`shared.contracts.topics.ACCESS`): dead-lettered at once and never
  handed to the handler, outcome ``unexpected_source``. The topic checked is the subscribed one when the
  table has it, else the one whose event types the subscription decodes (tests read topics of their own);
  a subscription to events of no known topic is not checked. This stops a misrouted producer; it is a
  security boundary only together with the broker's ACLs (docs/topics.md).
* **The handler fails because a dependency is unreachable** (:func:`is_infrastructure_error`: connection
  refused/reset, asyncpg connection errors and ``CannotConnectNowError``, SQLAlchemy ``OperationalError``
  / ``InterfaceError`` / invalidated connections, ``OSError``, ``TimeoutError``, retriable Kafka errors):
  retried with capped exponential backoff and **not counted** against the record, so an outage never
  dead-letters good events. After ``outage_window`` seconds of one outage the record is handed back to
  the broker (not committed, outcome ``deferred``) and fetched again — which keeps the consumer inside
  Kafka's ``max.poll.interval.ms`` (5 minutes) so the group does not evict it — and the waiting goes on.
* **The handler fails for any other reason** (a bug, a record the code cannot handle): retried with
  exponential backoff up to ``max_attempts`` counted attempts (default 5: about 7.5 s), then
  dead-lettered to ``<topic>.dlq`` and committed, so the records after it on its partition move on.
* **Batch handlers** (:func:`subscribe_batch`): the whole batch gets the same policy; when it keeps
  failing for non-infrastructure reasons it is split in halves, each tried once, recursively, until the
  poison records stand alone; those are dead-lettered and every other record is applied. Batch handlers
  must therefore be idempotent per record (:func:`claim_many`): a half applied before an outage deferred
  the batch is applied again, harmlessly, on redelivery.

A dead letter keeps the original value, key and headers and adds ``x-dlq-reason`` (exception type and
message), ``x-dlq-error-type``, ``x-dlq-attempts``, ``x-dlq-consumer`` (the group), ``x-dlq-time`` and the
source ``x-dlq-source-topic`` / ``-partition`` / ``-offset``; ``python -m shared.deadletters`` lists and
re-drives them. Metrics: :mod:`shared.event_metrics`.

The ledger is pruned by :func:`prune_processed_events`, never below the outbox replay window
(:data:`shared.outbox.REPLAY_WINDOW`): an event can be re-published for that long after it was written,
and its ledger row must outlive that, or a replay would apply it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from shared import event_metrics, telemetry
from shared.contracts import CATALOG, output
from shared.contracts import topics as topic_names
from shared.db import Database
from shared.events import (
    Envelope,
    MalformedEvent,
    UnexpectedSource,
    UnverifiedRecord,
    check_source,
    decode,
    header_map,
)
from shared.failures import is_unavailable
from shared.kafka import consumer_lag
from shared.outbox import REPLAY_WINDOW
from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.consumers")

# The ledger outlives the replay window by a day: slack for clock skew between the producer's database
# (which stamps an outbox row's created_at) and the consumer's (which stamps processed_at).
PROCESSED_EVENTS_RETENTION = REPLAY_WINDOW + timedelta(days=1)

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


async def prune_processed_events(
    db: Database, retention: timedelta = PROCESSED_EVENTS_RETENTION, *, chunk: int = 10_000
) -> int:
    """Delete ledger rows older than ``retention``; returns how many. One round, for a periodic task.

    Refuses (ValueError) a retention shorter than the outbox replay window, which would let a replay
    apply an event twice. Deletes in chunks, each its own transaction, so no lock is held for long."""
    if retention < REPLAY_WINDOW:
        raise ValueError(
            f"processed_events retention {retention} is shorter than the outbox replay window "
            f"{REPLAY_WINDOW}: a replayed event would be applied twice"
        )
    total = 0
    while True:
        async with db.transaction(system=True) as session:
            result = await session.execute(
                text(
                    "DELETE FROM processed_events WHERE ctid IN (SELECT ctid FROM processed_events "
                    "WHERE processed_at < now() - make_interval(secs => :s) LIMIT :n)"
                ),
                {"s": retention.total_seconds(), "n": chunk},
            )
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < chunk:
            return total


# ---------------------------------------------------------------------------------------- the policy


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when ``exc`` says a dependency (database, broker, network) is unreachable, not that the
    record is bad: such failures are retried without counting against the record."""
    if is_unavailable(exc):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KafkaConnectionError | KafkaTimeoutError):
            return True
        if isinstance(current, KafkaError) and current.retriable:
            return True
        current = current.__cause__
    return False


class RecordVerifier(Protocol):
    async def verify(self, items: list[tuple[Any, Envelope]]) -> list[str | None]:
        """For each (Kafka record, its envelope): None when it may be applied, else why not."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How one delivery of a record is retried (see the module docstring)."""

    max_attempts: int = 5  # counted (non-infrastructure) failures before the record is dead-lettered
    initial_delay: float = 0.5  # doubles per failure: 0.5, 1, 2, 4 s ...
    max_delay: float = 30.0
    outage_window: float = 60.0  # seconds of one outage waited out in-process before redelivery

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def once(self) -> RetryPolicy:
        """The same policy with a single counted attempt (outages are still waited out)."""
        return RetryPolicy(1, self.initial_delay, self.max_delay, self.outage_window)


class HandlerGaveUp(Exception):
    """The handler failed ``attempts`` counted times for a reason that is not an outage."""

    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.attempts = attempts

    @property
    def reason(self) -> str:
        return str(self)


class _Budget:
    """Tenacity's ``after``/``wait``/``stop`` for one delivery: counts only non-infrastructure failures."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self.counted = 0
        self.outage_streak = 0
        self.outage_since: float | None = None
        self.last_was_outage = False

    def after(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.last_was_outage = exc is not None and is_infrastructure_error(exc)
        if self.last_was_outage:
            self.outage_streak += 1
            if self.outage_since is None:
                self.outage_since = self.clock()
        else:
            self.counted += 1
            self.outage_streak = 0
            self.outage_since = None

    def wait(self, state: RetryCallState) -> float:
        n = self.outage_streak if self.last_was_outage else self.counted
        return float(min(self.policy.max_delay, self.policy.initial_delay * 2 ** max(n - 1, 0)))

    def stop(self, state: RetryCallState) -> bool:
        if self.last_was_outage:
            assert self.outage_since is not None
            return self.clock() - self.outage_since >= self.policy.outage_window
        return self.counted >= self.policy.max_attempts


async def call_with_policy(
    call: Callable[[], Awaitable[None]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[BaseException, bool], None] | None = None,
) -> None:
    """Run ``call`` under ``policy``. Returns once it succeeds; raises :class:`HandlerGaveUp` after
    ``max_attempts`` counted failures; re-raises the infrastructure error once an outage has lasted
    ``outage_window`` (the caller then hands the record back to the broker)."""
    budget = _Budget(policy, clock)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and exc is not None:
            on_retry(exc, budget.last_was_outage)

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            after=budget.after,
            wait=budget.wait,
            stop=budget.stop,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                await call()
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        raise HandlerGaveUp(exc, budget.counted) from exc


# ---------------------------------------------------------------------------------------- dead letters


async def dead_letter(
    broker: KafkaBroker,
    record: Any,
    reason: str,
    *,
    consumer: str = "",
    attempts: int = 0,
    error_type: str = "",
) -> None:
    """Park ``record`` on ``<topic>.dlq``: original value, key and headers plus the ``x-dlq-*`` ones."""
    topic = str(getattr(record, "topic", "unknown"))
    headers = {
        k: v
        for k, v in header_map(getattr(record, "headers", None) or []).items()
        if not k.startswith("x-dlq-")
    }
    headers.update(
        {
            "x-dlq-reason": reason[:1000],
            "x-dlq-error-type": error_type,
            "x-dlq-attempts": str(attempts),
            "x-dlq-consumer": consumer,
            "x-dlq-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "x-dlq-source-topic": topic,
            "x-dlq-source-partition": str(getattr(record, "partition", "")),
            "x-dlq-source-offset": str(getattr(record, "offset", "")),
        }
    )
    dlq = topic_names.dead_letter(topic)
    ensure_topic = getattr(broker, "ensure_topic", None)  # shared.kafka's brokers create it if missing
    if ensure_topic is not None:
        await ensure_topic(dlq)
    await broker.publish(
        getattr(record, "value", b"") or b"",
        topic=dlq,
        key=getattr(record, "key", None),
        headers=headers,
    )
    event_metrics.EVENTS_DEAD_LETTERED.labels(topic=topic, consumer=consumer).inc()
    log.warning(
        "event sent to dead-letter topic",
        extra={"topic": topic, "consumer": consumer, "reason": reason[:300], "attempts": attempts},
    )


# Every topic's event types, the internal output topic's included (CATALOG holds the documented ones).
_EVENT_TYPES: dict[str, dict[str, type[BaseModel]]] = {**CATALOG, topic_names.OUTPUT: output.EVENT_TYPES}


def checked_topic(topic: str, models: dict[str, type[BaseModel]]) -> str | None:
    """The topic of :data:`~shared.contracts.topics.ACCESS` whose producers a subscription to ``topic``
    decoding ``models`` accepts: ``topic`` itself when the table has it, else the one topic whose event
    types include all of ``models`` (a test's own topic of job events is checked as the job topic)."""
    if topic in topic_names.ACCESS:
        return topic
    found = [t for t, events in _EVENT_TYPES.items() if models and set(models) <= set(events)]
    return found[0] if len(found) == 1 and found[0] in topic_names.ACCESS else None


class _Consumer:
    """What one subscription needs at hand: its names, its policy, its broker for dead letters."""

    def __init__(
        self,
        broker: KafkaBroker,
        topic: str,
        group_id: str,
        policy: RetryPolicy,
        models: dict[str, type[BaseModel]] | None = None,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.group_id = group_id
        self.policy = policy
        self.checked_topic = checked_topic(topic, models or {})
        self.handle_seconds = event_metrics.EVENT_HANDLE_SECONDS.labels(topic=topic, consumer=group_id)

    def accept(self, envelope: Envelope) -> Envelope:
        """``envelope`` when its source may publish on this topic; else :class:`UnexpectedSource`."""
        return envelope if self.checked_topic is None else check_source(envelope, self.checked_topic)

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            event_metrics.EVENTS_CONSUMED.labels(
                topic=self.topic, consumer=self.group_id, outcome=outcome
            ).inc(n)

    async def timed(self, awaitable: Awaitable[None]) -> None:
        began = time.perf_counter()
        try:
            await awaitable
        finally:
            self.handle_seconds.observe(time.perf_counter() - began)

    def on_retry(self, exc: BaseException, outage: bool) -> None:
        log.warning(
            "handler failed; retrying" + (" (dependency unavailable, not counted)" if outage else ""),
            extra={"topic": self.topic, "consumer": self.group_id, "error": f"{type(exc).__name__}: {exc}"},
        )

    async def malformed(self, record: Any, exc: MalformedEvent) -> None:
        error_type = type(exc).__name__
        await dead_letter(self.broker, record, str(exc), consumer=self.group_id, error_type=error_type)
        self.count(
            "unexpected_source"
            if isinstance(exc, UnexpectedSource)
            else "unverified"
            if isinstance(exc, UnverifiedRecord)
            else "malformed"
        )

    async def poison(self, record: Any, gave_up: HandlerGaveUp) -> None:
        await dead_letter(
            self.broker,
            record,
            gave_up.reason,
            consumer=self.group_id,
            attempts=gave_up.attempts,
            error_type=type(gave_up.cause).__name__,
        )
        self.count("dead_lettered")

    def deferred(self, n: int, exc: BaseException) -> None:
        self.count("deferred", n)
        log.warning(
            "dependency still unavailable; handing the record back to the broker for redelivery",
            extra={"topic": self.topic, "consumer": self.group_id, "records": n, "error": repr(exc)},
        )


def _policy(
    max_attempts: int, retry_delay: float, max_retry_delay: float, outage_window: float
) -> RetryPolicy:
    return RetryPolicy(max_attempts, retry_delay, max_retry_delay, outage_window)


async def _raw_records(message: StreamMessage[Any]) -> Any:
    """The subscribers' decoder: the handler gets aiokafka's record (a tuple of them for a batch) as it
    came, and decodes it itself (:func:`shared.events.decode`, one pydantic parse).

    FastStream's default would first ``json.loads`` every value (parsed again, by the model, anyway),
    and a handler that asked for the message through its ``KafkaMessage`` annotation has it resolved by
    a synchronous context lookup that fast_depends runs on a worker thread: a thread hop per record or
    batch, on every consumer of every service."""
    return message.raw_message


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    models: dict[str, type[BaseModel]],
    handle: Callable[[Envelope], Awaitable[None]],
    max_attempts: int = RetryPolicy.max_attempts,
    retry_delay: float = RetryPolicy.initial_delay,
    max_retry_delay: float = RetryPolicy.max_delay,
    outage_window: float = RetryPolicy.outage_window,
) -> None:
    """Register ``handle`` for every decodable event on ``topic`` (one at a time, in partition order)."""
    tracer = telemetry.tracer("gpufleet.consumers")
    policy = _policy(max_attempts, retry_delay, max_retry_delay, outage_window)
    c = _Consumer(broker, topic, group_id, policy, models)

    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        heartbeat_interval_ms=1000,
        session_timeout_ms=10000,
        title=f"{group_id}:{topic}",
        decoder=_raw_records,
    )
    async def _consume(record: Any) -> None:
        try:
            envelope = c.accept(decode(record.headers, record.value, models))
        except MalformedEvent as exc:
            await c.malformed(record, exc)
            return
        ctx = telemetry.extract(record.headers)
        with tracer.start_as_current_span(
            f"{topic} process",
            context=ctx,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "cloudevents.event_type": envelope.type},
        ):
            try:
                await call_with_policy(lambda: c.timed(handle(envelope)), c.policy, on_retry=c.on_retry)
            except HandlerGaveUp as gave_up:
                await c.poison(record, gave_up)
                return
            except Exception as exc:
                c.deferred(1, exc)
                raise  # not acknowledged: FastStream seeks back and the record comes again
        c.count("processed")


def subscribe_batch(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    models: dict[str, type[BaseModel]],
    handle: Callable[[list[Envelope]], Awaitable[None]],
    max_records: int = 500,
    max_attempts: int = RetryPolicy.max_attempts,
    retry_delay: float = RetryPolicy.initial_delay,
    max_retry_delay: float = RetryPolicy.max_delay,
    outage_window: float = RetryPolicy.outage_window,
    verify: RecordVerifier | None = None,
) -> None:
    """Like :func:`subscribe`, but hands over up to ``max_records`` events at once (for bulk inserts).

    ``verify``: for a topic whose writers sign their records (shared.record_signing), the check each
    decoded record must pass; one that fails is dead-lettered as :class:`UnverifiedRecord`."""
    policy = _policy(max_attempts, retry_delay, max_retry_delay, outage_window)
    c = _Consumer(broker, topic, group_id, policy, models)

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
        decoder=_raw_records,
    )
    async def _consume_batch(raw: Any) -> None:
        records = raw if isinstance(raw, tuple | list) else (raw,)
        good: list[tuple[Any, Envelope]] = []
        for record in records:
            try:
                good.append((record, c.accept(decode(record.headers, record.value, models))))
            except MalformedEvent as exc:
                await c.malformed(record, exc)
        if verify is not None and good:
            reasons = await verify.verify(good)
            for (record, _), reason in zip(good, reasons, strict=True):
                if reason is not None:
                    await c.malformed(record, UnverifiedRecord(reason))
            good = [item for item, reason in zip(good, reasons, strict=True) if reason is None]
        try:
            await apply_batch(good, handle, c)
        except Exception as exc:
            c.deferred(len(good), exc)
            raise


async def apply_batch(
    items: list[tuple[Any, Envelope]],
    handle: Callable[[list[Envelope]], Awaitable[None]],
    consumer: _Consumer,
    *,
    policy: RetryPolicy | None = None,
    prior_attempts: int = 0,
) -> None:
    """Apply ``items`` (record, envelope) through ``handle``; bisect a batch that keeps failing until the
    poison records stand alone, dead-letter those and apply the rest, in order."""
    if not items:
        return
    try:
        await call_with_policy(
            lambda: consumer.timed(handle([env for _, env in items])),
            policy or consumer.policy,
            on_retry=consumer.on_retry,
        )
    except HandlerGaveUp as gave_up:
        attempts = prior_attempts + gave_up.attempts
        if len(items) == 1:
            await consumer.poison(items[0][0], HandlerGaveUp(gave_up.cause, attempts))
            return
        # Each half gets one counted try: its records already failed max_attempts times together.
        log.warning(
            "batch keeps failing; splitting it to find the poison records",
            extra={"topic": consumer.topic, "consumer": consumer.group_id, "records": len(items)},
        )
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            await apply_batch(part, handle, consumer, policy=consumer.policy.once(), prior_attempts=attempts)
        return
    consumer.count("processed", len(items))


# ---------------------------------------------------------------------------------------- lag


async def refresh_consumer_lag(
    kafka: KafkaSettings | str, group_id: str, topics: Iterable[str]
) -> dict[str, int]:
    """One round for the runtime: measure ``group_id``'s lag on ``topics`` and set the lag gauge
    (``kafka``: the settings, or a bare bootstrap address of a broker without SASL)."""
    lag = await consumer_lag(kafka, group_id, topics)
    for topic, value in lag.items():
        event_metrics.CONSUMER_LAG.labels(topic=topic, consumer=group_id).set(value)
    return lag
