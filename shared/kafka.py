"""Kafka plumbing: producer factory, topic creation, FastStream broker factory, consumer lag.

Retries here are bounded and short (tenacity): they ride out a broker hiccup (a leader moving, a topic
created a moment ago, the embedded tansu broker's occasional ``UnknownError``), not an outage. Outages
are the caller's to wait out: the runtime calls :func:`ensure_topics` in the background with its own
backoff, and the outbox relay retries forever. Nothing here has to succeed for a service to start.

**Topics are never created by naming them.** Every metadata request of this process asks the broker not to
auto-create the topics it names (:func:`_never_auto_create_topics`); topics exist because
:func:`ensure_topics` created them, with the configured partition count, before anyone produces to or
consumes from them.

Every client made here (and by the outbox relay, the runtime and the dead-letter tool, through
:func:`client_security`) authenticates as the process's own principal when
``GPUFLEET_KAFKA_SECURITY_PROTOCOL`` is ``SASL_PLAINTEXT`` or ``SASL_SSL`` (Apache Kafka with SCRAM and
ACLs, deploy/kafka/); the default ``PLAINTEXT`` is what the embedded broker speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.wait import wait_base

from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.kafka")

_TOPIC_ALREADY_EXISTS = 36


def _never_auto_create_topics() -> None:
    """Make aiokafka's metadata requests (v4 and later) say ``allow_auto_topic_creation=false``.

    aiokafka always asks for auto-creation and has no setting for it, so a broker that allows it creates
    a topic, with its own default partition count, the first time any client names it: a producer
    sending, a consumer subscribing, an admin describing. That races the explicit creation of the same
    topic by :func:`ensure_topics` in another process. The embedded tansu broker, which comes back empty
    after every restart, then creates the topic twice over: produce requests fail with
    ``AlreadyExists`` and offset commits with ``UnknownTopicOrPartition`` for good, and a consumer whose
    commit keeps failing consumes nothing more. Seen end to end after a broker restart: monitoring's
    metrics and output consumers stalled, so no utilization was recorded until the stack restarted.
    Apache Kafka has the same race in milder form (a topic with the broker's default partitions). A
    request that names its choice explicitly keeps it."""
    init = MetadataRequest.__init__
    if getattr(init, "_gpufleet_no_auto_create", False):
        return

    def __init__(
        self: MetadataRequest, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        init(self, topics, False if allow_auto_topic_creation is None else allow_auto_topic_creation)

    __init__._gpufleet_no_auto_create = True  # type: ignore[attr-defined]
    MetadataRequest.__init__ = __init__  # type: ignore[method-assign]


_never_auto_create_topics()


def _leave_groups_joined_at_generation_zero() -> None:
    """Make a stopping consumer leave its group when it joined at generation 0.

    aiokafka sends ``LeaveGroup`` only when its generation is above 0 (Apache Kafka starts a group at 1;
    "no generation" is -1). The embedded tansu broker starts every new group at 0, so the first member of a
    group never left it: the next member to join (a restarted service, or the runtime reconnecting its
    consumers after a broker restart, when every group is new) waited out the departed member's session
    timeout before the group rebalanced, 18 s instead of 5. The request is the one aiokafka sends; a
    failure is logged and ignored as there (leaving is a courtesy; the session timeout is the backstop)."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.protocol.group import LeaveGroupRequest

    leave = GroupCoordinator._maybe_leave_group
    if getattr(leave, "_gpufleet_generation_zero", False):
        return

    async def _maybe_leave_group(self: GroupCoordinator) -> None:
        if self.generation == 0 and self.member_id and self._group_instance_id is None:
            try:
                await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
            except KafkaError as err:
                log.warning("LeaveGroup request failed", extra={"group": self.group_id, "error": str(err)})
            self.reset_generation()
            return
        await leave(self)

    _maybe_leave_group._gpufleet_generation_zero = True  # type: ignore[attr-defined]
    GroupCoordinator._maybe_leave_group = _maybe_leave_group  # type: ignore[method-assign]


_leave_groups_joined_at_generation_zero()


_SASL_SECURITY: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}


def client_security(settings: KafkaSettings | str) -> dict[str, Any]:
    """Keyword arguments that make an aiokafka client (producer, consumer, admin) authenticate as the
    configured principal; empty for ``PLAINTEXT`` (and for a bare bootstrap address, as tests pass)."""
    if isinstance(settings, str) or settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        # SASL_SSL: the broker's certificate is checked against the system's trust store.
        "ssl_context": create_ssl_context() if settings.kafka_security_protocol == "SASL_SSL" else None,
    }


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """The same principal for a FastStream broker (which turns it back into aiokafka's arguments)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    tls = settings.kafka_security_protocol == "SASL_SSL"
    return _SASL_SECURITY[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=create_ssl_context() if tls else None,
        use_ssl=tls,
    )


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        **client_security(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        compression_type="gzip",
        linger_ms=2,
        request_timeout_ms=15000,
    )


def _log_retry(what: str) -> Any:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(f"{what} failed; retrying", extra={"attempt": state.attempt_number, "error": repr(exc)})

    return before_sleep


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    partitions: int | None = None,
    *,
    attempts: int = 3,
    wait: wait_base | None = None,
) -> None:
    """Create missing topics with the configured partition count; existing ones are left alone.

    Idempotent (a topic another process created meanwhile is fine). Transient broker errors are retried
    ``attempts`` times; anything else, and an unreachable broker after the last try, is raised."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError)),
        stop=stop_after_attempt(attempts),
        wait=wait or wait_exponential(multiplier=0.2, max=2.0),
        before_sleep=_log_retry("ensure_topics"),
        reraise=True,
    ):
        with attempt:
            await _create_missing(settings, wanted, partitions)


async def _create_missing(settings: KafkaSettings, wanted: list[str], partitions: int | None) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="gpufleet-admin",
        **client_security(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, partitions or settings.kafka_topic_partitions, settings.kafka_replication_factor)
            for t in wanted
            if t not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for topic, code, *_ in getattr(response, "topic_errors", ()):
            if code and code != _TOPIC_ALREADY_EXISTS:  # "already exists": another service won the race
                raise for_code(code)(f"creating topic {topic!r}")
        log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


class RetryingKafkaBroker(KafkaBroker):
    """A broker whose direct publishes (dead letters, tests, tools) survive a transient broker error.

    Brokers answer some produce requests with errors that go away on retry (a leader moving, a topic
    created a moment ago; the embedded tansu broker now and then answers ``UnknownError``). Service
    events never depend on this: they go through the outbox, whose relay retries on its own."""

    publish_attempts: ClassVar[int] = 5
    publish_wait: ClassVar[wait_base] = wait_exponential(multiplier=0.1, max=2.0)

    def __init__(self, *args: Any, kafka_settings: KafkaSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kafka_settings = kafka_settings
        self._ensured: set[str] = set()

    async def ensure_topic(self, topic: str) -> None:
        """Create ``topic`` if it is missing, once per broker object (a topic is never created by
        publishing to it), when this broker was made with its settings."""
        if self.kafka_settings is None or topic in self._ensured:
            return
        await ensure_topics(self.kafka_settings, (topic,))
        self._ensured.add(topic)

    async def start(self) -> None:
        """Connect, then start every subscriber at once (FastStream starts them one after another).

        A consumer's start waits for its group's first assignment, and a broker answers a new group's
        first join only after a delay (Apache Kafka's ``group.initial.rebalance.delay.ms``, 3 s by default;
        the embedded tansu waits half the session timeout, 5 s). One after another, a service with three
        consumer groups took 15 s to start, and as long to reconnect after a broker restart; together they
        take one delay. A subscriber that fails to start leaves the others stopped and the error raised."""
        await self.connect()
        results = await asyncio.gather(*(sub.start() for sub in self.subscribers), return_exceptions=True)
        if errors := [r for r in results if isinstance(r, BaseException)]:
            await asyncio.gather(*(sub.stop() for sub in self.subscribers), return_exceptions=True)
            raise errors[0]
        for pub in self.publishers:
            await pub.start()
        self.running = True

    def pause_consumers(self) -> int:
        """Stop fetching on every partition assigned to this broker's consumers; how many were paused.

        For a broker that stopped answering: if it comes back empty, consumers left fetching would read
        it at their old positions, ahead of the start of its refilled log, until they are reconnected."""
        paused = 0
        for sub in self.subscribers:
            consumer = getattr(sub, "consumer", None)
            if isinstance(consumer, AIOKafkaConsumer) and (assigned := consumer.assignment()):
                consumer.pause(*assigned)
                paused += len(assigned)
        return paused

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            stop=stop_after_attempt(self.publish_attempts),
            wait=self.publish_wait,
            before_sleep=_log_retry("publish"),
            reraise=True,
        ):
            with attempt:
                return await super().publish(*args, **kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")


def make_broker(settings: KafkaSettings, client_id: str) -> KafkaBroker:
    """A FastStream broker for a service's consumers (it publishes only through the outbox relay)."""
    return RetryingKafkaBroker(
        settings.kafka_bootstrap_servers,
        kafka_settings=settings,
        client_id=client_id,
        enable_idempotence=settings.kafka_idempotent_producer,
        security=broker_security(settings),
        logger=logging.getLogger(f"gpufleet.{client_id}.faststream"),
    )


async def topic_partitions(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of those ``topics`` that exist (a missing topic has none; none is created)."""
    existing = set(await admin.list_topics())
    asked = [t for t in dict.fromkeys(topics) if t in existing]
    if not asked:
        return []
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in await admin.describe_topics(asked)
        if not t["error_code"]
        for p in t["partitions"]
    )


async def consumer_lag(kafka: KafkaSettings | str, group_id: str, topics: Iterable[str]) -> dict[str, int]:
    """Per topic, the records ``group_id`` has not committed yet: the sum over partitions of end offset
    minus committed offset (a partition the group never committed counts from its first offset).
    ``kafka``: the settings (their principal), or a bare bootstrap address of a broker without SASL."""
    bootstrap = kafka if isinstance(kafka, str) else kafka.kafka_bootstrap_servers
    security = client_security(kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="gpufleet-lag", **security)
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id="gpufleet-lag", enable_auto_commit=False, **security
    )
    await admin.start()
    try:
        tps = await topic_partitions(admin, topics)
        lag = {t: 0 for t in dict.fromkeys(topics)}
        if not tps:
            return lag
        committed = await admin.list_consumer_group_offsets(group_id, partitions=tps)
        await probe.start()
        ends = await probe.end_offsets(tps)
        starts = await probe.beginning_offsets(tps)
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            lag[tp.topic] += max(0, ends[tp] - done)
        return lag
    finally:
        await probe.stop()
        await admin.close()
