"""Consumer groups across restarts (shared.kafka): a stopped consumer leaves its group even where the broker
started the group at generation 0, and a service's consumers start together, not one group join after
another. Both made reconnecting after a broker restart take 20 s and more instead of one group join."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import ensure_topics, make_broker

from .topics import settings

pytestmark = pytest.mark.integration


async def _members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.groups
        return [member[0] for member in described[5]]
    finally:
        await admin.close()


async def test_the_first_member_of_a_new_group_leaves_it_when_it_stops(kafka):
    topic = f"test.groups.{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=group)
    await consumer.start()
    try:
        # The embedded broker starts a new group at generation 0, where aiokafka alone would not leave it.
        assert consumer._coordinator is not None and consumer._coordinator.generation == 0
        assert await _members(kafka.bootstrap, group) == [consumer._coordinator.member_id]
    finally:
        await consumer.stop()
    assert await _members(kafka.bootstrap, group) == []


async def test_a_brokers_subscribers_start_together(kafka):
    topics = [f"test.together.{uuid.uuid4().hex[:8]}" for _ in range(3)]
    await ensure_topics(settings(kafka.bootstrap), topics)
    broker = make_broker(settings(kafka.bootstrap), "test-together")
    for topic in topics:

        @broker.subscriber(topic, group_id=f"g-{topic}")
        async def handle(body: Any) -> None:  # pragma: no cover - nothing is sent
            pass

    events: list[tuple[str, str]] = []
    for sub in broker.subscribers:
        start = sub.start

        async def recording(start: Any = start, name: str = next(iter(sub.topic_names))) -> None:
            events.append(("begin", name))
            await start()
            events.append(("end", name))

        sub.start = recording  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(broker.start(), 60)
        # Every group join began before the first one ended (one after another, each waited for the last).
        assert [kind for kind, _ in events[:3]] == ["begin"] * 3
        assert sorted(name for _, name in events[3:]) == sorted(topics)
        assert all(await asyncio.gather(*(_members(kafka.bootstrap, f"g-{t}") for t in topics)))
    finally:
        await broker.stop()
