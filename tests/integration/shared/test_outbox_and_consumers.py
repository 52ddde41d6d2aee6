"""The outbox relay and idempotent consumers against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel
from sqlalchemy import text

from shared.consumers import claim, subscribe
from shared.db import Database
from shared.embedded.kafka import EmbeddedKafka
from shared.events import Envelope, decode, header_map
from shared.kafka import make_broker
from shared.outbox import OutboxRelay, record
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


class Ping(BaseModel):
    n: int


MODELS = {"test.ping": Ping}


def settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap, kafka_idempotent_producer=False, kafka_topic_partitions=2
    )


async def read_all(bootstrap: str, topic: str, want: int, timeout: float = 20) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < want:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(records)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return got


async def test_committed_events_are_published_rolled_back_ones_are_not(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    async with db.transaction(system=True) as s:
        for n in range(3):
            await record(
                s, topic, Envelope(type="test.ping", source="test", data=Ping(n=n), subject=str(n)), key="k"
            )
    with pytest.raises(RuntimeError):
        async with db.transaction(system=True) as s:
            await record(s, topic, Envelope(type="test.ping", source="test", data=Ping(n=99)), key="k")
            raise RuntimeError("rollback")
    relay = OutboxRelay(db, settings(kafka.bootstrap), publishes=(topic,), poll_seconds=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    records = await read_all(kafka.bootstrap, topic, 3)
    stop.set()
    await asyncio.wait_for(task, 10)
    values = [decode(r.headers, r.value, MODELS).data.n for r in records]
    assert values == [0, 1, 2]  # same key: one partition, in commit order; the rolled back one absent
    headers = header_map(records[0].headers)
    assert headers["ce_specversion"] == "1.0" and headers["ce_type"] == "test.ping"
    await db.dispose()


async def test_the_relay_creates_a_topic_a_row_names_outside_its_declared_ones(migrate_schema, kafka):
    """Nothing is created by sending to it (shared.kafka): a row for a topic the relay was not told of
    (one a newer build no longer declares) still goes out, on a topic made with the configured count."""
    db = Database(await migrate_schema("billing"), "billing")
    declared, other = (f"test.outbox.{name}.{uuid.uuid4().hex[:8]}" for name in ("declared", "other"))
    async with db.transaction(system=True) as s:
        await record(s, other, Envelope(type="test.ping", source="test", data=Ping(n=5)), key="k")
    relay = OutboxRelay(db, settings(kafka.bootstrap), publishes=(declared,), poll_seconds=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            while relay.published_total < 1:
                await asyncio.sleep(0.05)
        records = await read_all(kafka.bootstrap, other, 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await db.dispose()
    assert [decode(r.headers, r.value, MODELS).data.n for r in records] == [5]
    partitions = await _partitions(kafka.bootstrap, other)
    assert partitions == settings(kafka.bootstrap).kafka_topic_partitions


async def _partitions(bootstrap: str, topic: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_relay_refills_a_broker_that_lost_its_data(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.replay.{uuid.uuid4().hex[:8]}"
    first = EmbeddedKafka()
    first.start()
    async with db.transaction(system=True) as s:
        await record(s, topic, Envelope(type="test.ping", source="test", data=Ping(n=7)), key="a")
    relay = OutboxRelay(db, settings(first.bootstrap), publishes=(topic,), poll_seconds=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    assert len(await read_all(first.bootstrap, topic, 1)) == 1
    stop.set()
    await asyncio.wait_for(task, 10)
    first.stop()  # in-memory broker: everything it held is gone

    second = EmbeddedKafka()
    second.start()
    try:
        relay2 = OutboxRelay(db, settings(second.bootstrap), publishes=(topic,), poll_seconds=0.1)
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(relay2.run(stop2))
        got = await read_all(second.bootstrap, topic, 1)
        stop2.set()
        await asyncio.wait_for(task2, 10)
        assert [decode(r.headers, r.value, MODELS).data.n for r in got] == [7]
        assert relay2.replays == 1
    finally:
        second.stop()
        await db.dispose()


async def test_consumer_applies_each_event_once_and_dead_letters_garbage(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.consume.{uuid.uuid4().hex[:8]}"
    consumer_name = f"test-{uuid.uuid4().hex[:6]}"
    applied: list[int] = []
    seen = asyncio.Event()

    async def handle(env: Envelope) -> None:
        async with db.transaction(system=True) as s:
            if await claim(s, consumer_name, env.id):
                applied.append(env.data.n)
        if len(applied) >= 2:
            seen.set()

    broker = make_broker(settings(kafka.bootstrap), "test")
    subscribe(broker, topic, group_id=consumer_name, models=MODELS, handle=handle)
    env = Envelope(type="test.ping", source="test", data=Ping(n=1), time=datetime.now(UTC))
    await broker.start()
    try:
        for e in (env, env, Envelope(type="test.ping", source="test", data=Ping(n=2))):  # env twice
            await broker.publish(e.value(), topic=topic, headers=header_map(e.headers()))
        await broker.publish(b"not json", topic=topic, headers={"ce_id": "x"})
        await asyncio.wait_for(seen.wait(), 30)
        dlq = await read_all(kafka.bootstrap, f"{topic}.dlq", 1)
    finally:
        await broker.stop()
    assert sorted(applied) == [1, 2]
    assert "missing CloudEvents headers" in header_map(dlq[0].headers)["x-dlq-reason"]
    async with db.transaction(system=True) as s:
        count = (
            await s.execute(
                text("SELECT count(*) FROM processed_events WHERE consumer = :c"), {"c": consumer_name}
            )
        ).scalar()
    assert count == 2
    await db.dispose()


async def test_batch_consumer_gets_many_events_at_once(migrate_schema, kafka):
    from shared.consumers import subscribe_batch

    topic = f"test.batch.{uuid.uuid4().hex[:8]}"
    got: list[int] = []
    done = asyncio.Event()

    async def handle(envelopes: list[Envelope]) -> None:
        got.extend(e.data.n for e in envelopes)
        if len(got) >= 5:
            done.set()

    broker = make_broker(settings(kafka.bootstrap), "test-batch")
    subscribe_batch(broker, topic, group_id=f"g-{uuid.uuid4().hex[:6]}", models=MODELS, handle=handle)
    await broker.start()
    try:
        for n in range(5):
            e = Envelope(type="test.ping", source="test", data=Ping(n=n))
            await broker.publish(e.value(), topic=topic, key=b"same", headers=header_map(e.headers()))
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await broker.stop()
    assert got == [0, 1, 2, 3, 4]
