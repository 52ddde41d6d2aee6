"""Topics exist because ensure_topics made them, never because a client named one (shared.kafka): after the
embedded broker restarts empty, an auto-created topic racing the explicit creation of the same topic left
a consumer group unable to commit for good."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.kafka import ensure_topics, make_producer

from .topics import settings

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def test_naming_a_topic_does_not_create_it(kafka):
    topic = f"test.never-auto.{uuid.uuid4().hex[:8]}"
    producer = make_producer(settings(kafka.bootstrap), "test-no-auto")
    await producer.start()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, group_id=f"g-{topic}", request_timeout_ms=2000
    )
    try:
        with pytest.raises((KafkaError, TimeoutError)):
            await asyncio.wait_for(producer.send_and_wait(topic, b"x"), 10)
        with pytest.raises(KafkaError):  # a subscription waits for the topic, and does not make it
            await consumer.start()
        await consumer.stop()
        assert topic not in await _topics(kafka.bootstrap)

        await ensure_topics(settings(kafka.bootstrap), (topic,))
        assert (await _topics(kafka.bootstrap))[topic] == 2  # the configured count, not the broker's
        sent = await asyncio.wait_for(producer.send_and_wait(topic, b"x"), 10)
        assert sent.offset == 0
    finally:
        await producer.stop()
