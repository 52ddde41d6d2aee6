"""Kafka plumbing: producer factory, topic creation, FastStream broker factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.kafka")


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        compression_type="gzip",
        linger_ms=2,
        request_timeout_ms=15000,
    )


async def ensure_topics(
    settings: KafkaSettings, topics: Iterable[str], partitions: int | None = None
) -> None:
    """Create missing topics with the configured partition count (existing ones are left alone)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id="gpufleet-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(t, partitions or settings.kafka_topic_partitions, settings.kafka_replication_factor)
            for t in dict.fromkeys(topics)
            if t not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
            log.info("created topics", extra={"topics": [t.name for t in wanted]})
    finally:
        await admin.close()


class RetryingKafkaBroker(KafkaBroker):
    """A broker whose direct publishes (dead letters, tests, tools) survive a transient broker error.

    Brokers answer some produce requests with errors that go away on retry (a leader moving, a topic
    created a moment ago; the embedded tansu broker now and then answers ``UnknownError``). Service
    events never depend on this: they go through the outbox, whose relay retries on its own."""

    publish_attempts = 5

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, self.publish_attempts + 1):
            try:
                return await super().publish(*args, **kwargs)
            except KafkaError as exc:
                if attempt == self.publish_attempts:
                    raise
                log.warning("publish failed; retrying", extra={"attempt": attempt, "error": repr(exc)})
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")


def make_broker(settings: KafkaSettings, client_id: str) -> KafkaBroker:
    """A FastStream broker for a service's consumers (it publishes only through the outbox relay)."""
    return RetryingKafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        enable_idempotence=settings.kafka_idempotent_producer,
        logger=logging.getLogger(f"gpufleet.{client_id}.faststream"),
    )
