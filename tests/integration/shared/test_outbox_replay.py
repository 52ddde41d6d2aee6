"""The outbox relay against real PostgreSQL and the broker: loss detected by offsets, replay order under
concurrent writes, the replay window shared with the consumers' ledger, and what the relay reports."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from sqlalchemy import text

from shared.consumers import prune_processed_events
from shared.db import Database
from shared.embedded.kafka import EmbeddedKafka
from shared.events import Envelope, decode
from shared.outbox import REPLAY_WINDOW, OutboxRelay, outbox_backlog, record

from .topics import MODELS, Ping, read_all, settings

pytestmark = pytest.mark.integration


async def write(db: Database, topic: str, ns: range, key: str = "k") -> None:
    for n in ns:
        async with db.transaction(system=True) as s:
            await record(s, topic, Envelope(type="test.ping", source="test", data=Ping(n=n)), key=key)


def ns(records: list) -> list[int]:
    return [decode(r.headers, r.value, MODELS).data.n for r in records]


async def wait_for(condition, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_records_lost_behind_a_surviving_marker_are_re_published(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.truncated.{uuid.uuid4().hex[:8]}"
    await write(db, topic, range(3))
    relay = OutboxRelay(
        db, settings(kafka.bootstrap), publishes=(topic,), poll_seconds=0.1, marker_check_seconds=0.2
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        assert ns(await read_all(kafka.bootstrap, topic, 3)) == [0, 1, 2]
        await wait_for(lambda: relay.published_total == 3)
        assert relay.broker_connected and relay.replays == 0
        # The broker loses the topic's records; the relay's marker topic is untouched.
        await admin.delete_topics([topic])
        await admin.create_topics([NewTopic(topic, 2, 1)])
        await wait_for(lambda: relay.replays == 1)
        assert ns(await read_all(kafka.bootstrap, topic, 3)) == [0, 1, 2]
        await asyncio.sleep(1.0)  # several more checks: the refilled partition is not "lost" again
        assert relay.replays == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await admin.close()
    assert relay.broker_connected is False
    replays = REGISTRY.get_sample_value("gpufleet_outbox_replays_total", {"schema": "billing"})
    assert replays is not None and replays >= 1
    await db.dispose()


async def test_a_replay_goes_out_in_order_before_rows_written_while_it_runs(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.replay-order.{uuid.uuid4().hex[:8]}"
    first = EmbeddedKafka()
    first.start()
    try:
        await write(db, topic, range(40))
        relay = OutboxRelay(db, settings(first.bootstrap), publishes=(topic,), poll_seconds=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        assert len(await read_all(first.bootstrap, topic, 40)) == 40
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        first.stop()  # the broker comes back empty

    second = EmbeddedKafka()
    second.start()
    try:
        # Small batches make the replay take many rounds, while fresh rows of the same key keep coming.
        relay2 = OutboxRelay(
            db, settings(second.bootstrap), publishes=(topic,), poll_seconds=0.05, batch_size=5
        )
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(relay2.run(stop2))

        async def fresh_writes() -> None:
            for n in range(40, 80):
                await write(db, topic, range(n, n + 1))
                await asyncio.sleep(0.01)

        writer = asyncio.create_task(fresh_writes())
        got = ns(await read_all(second.bootstrap, topic, 80, timeout=60))
        await writer
        stop2.set()
        await asyncio.wait_for(task2, 10)
    finally:
        second.stop()
        await db.dispose()
    assert relay2.replays == 1
    assert got == list(range(80))  # one key: every replayed row first, then the fresh ones, in id order


async def other_relay_mid_batch(db: Database, ready: asyncio.Event, release: asyncio.Event) -> None:
    """Hold the billing relays' turn (their advisory lock) until ``release``, as a relay mid-batch does."""
    async with db.transaction(system=True) as s:
        await s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "gpufleet-outbox-billing"})
        ready.set()
        await release.wait()


async def test_a_replay_waits_for_a_batch_in_flight_on_another_relay(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.replay-lock.{uuid.uuid4().hex[:8]}"
    await write(db, topic, range(2))
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE outbox SET published_at = now() WHERE topic = :t"), {"t": topic})
    relay = OutboxRelay(db, settings(kafka.bootstrap), publishes=(topic,))
    holder_ready, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(other_relay_mid_batch(db, holder_ready, release))
    await holder_ready.wait()
    replay = asyncio.create_task(relay._replay((topic,), "test"))
    await asyncio.sleep(0.5)
    assert not replay.done()  # it would otherwise reorder rows around the other relay's batch
    release.set()
    await holder
    assert await asyncio.wait_for(replay, 10) == 2
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE outbox SET published_at = now() WHERE topic = :t"), {"t": topic})
    await db.dispose()


async def test_rows_older_than_the_window_are_neither_replayed_nor_kept(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.window.{uuid.uuid4().hex[:8]}"
    await write(db, topic, range(2))
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE outbox SET published_at = now() WHERE topic = :t"), {"t": topic})
        await s.execute(
            text(
                "UPDATE outbox SET created_at = now() - interval '8 days' WHERE topic = :t AND payload = :p"
            ),
            {"t": topic, "p": Ping(n=0).model_dump_json().encode()},
        )
    relay = OutboxRelay(db, settings(kafka.bootstrap), publishes=(topic,))
    assert await relay._replay((topic,), "test") == 1  # only the row inside the window
    await relay._prune()
    async with db.transaction(system=True) as s:
        left = (await s.execute(text("SELECT count(*) FROM outbox WHERE topic = :t"), {"t": topic})).scalar()
        await s.execute(text("UPDATE outbox SET published_at = now() WHERE topic = :t"), {"t": topic})
    assert left == 1
    await db.dispose()


async def test_the_ledger_keeps_every_row_a_replay_could_bring_back(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing")
    consumer = f"test-prune-{uuid.uuid4().hex[:6]}"
    day = timedelta(days=1)
    ages = {
        day: uuid.uuid4(),
        7 * day - timedelta(hours=1): uuid.uuid4(),
        7 * day + timedelta(hours=1): uuid.uuid4(),
    }
    ages[30 * day] = uuid.uuid4()
    async with db.transaction(system=True) as s:
        for age, event_id in ages.items():
            await s.execute(
                text(
                    "INSERT INTO processed_events (consumer, event_id, processed_at) "
                    "VALUES (:c, :e, now() - make_interval(secs => :age))"
                ),
                {"c": consumer, "e": event_id, "age": age.total_seconds()},
            )
    with pytest.raises(ValueError):
        await prune_processed_events(db, timedelta(days=6))
    assert await prune_processed_events(db, REPLAY_WINDOW, chunk=1) >= 2
    async with db.transaction(system=True) as s:
        kept = {
            r[0]
            for r in await s.execute(
                text("SELECT event_id FROM processed_events WHERE consumer = :c"), {"c": consumer}
            )
        }
    assert kept == {ages[day], ages[7 * day - timedelta(hours=1)]}
    await db.dispose()


async def test_backlog_and_a_relay_that_cannot_reach_the_broker(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.backlog.{uuid.uuid4().hex[:8]}"
    await write(db, topic, range(2))
    async with db.transaction(system=True) as s:
        await s.execute(
            text("UPDATE outbox SET created_at = now() - interval '1 hour' WHERE topic = :t"), {"t": topic}
        )
    count, age = await outbox_backlog(db)
    assert count >= 2 and age is not None and age >= 3600

    dead = settings("127.0.0.1:1")
    relay = OutboxRelay(db, dead, publishes=(topic,), poll_seconds=0.1, retry_initial=0.05, retry_max=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(1.5)
    assert not task.done() and relay.broker_connected is False and relay.published_total == 0
    stop.set()
    await asyncio.wait_for(task, 10)  # stops promptly even in the middle of its backoff
    async with db.transaction(system=True) as s:
        await s.execute(text("UPDATE outbox SET published_at = now() WHERE topic = :t"), {"t": topic})
    await db.dispose()


async def test_a_broker_that_restarts_empty_gets_the_replay_before_any_newer_row(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.restart.{uuid.uuid4().hex[:8]}"
    first = EmbeddedKafka()
    first.start()
    # The periodic check is far away: only the guard before each batch can notice the restart in time.
    relay = OutboxRelay(
        db, settings(first.bootstrap), publishes=(topic,), poll_seconds=0.05, marker_check_seconds=600
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    second = EmbeddedKafka(port=first.port)
    try:
        await write(db, topic, range(20))
        assert ns(await read_all(first.bootstrap, topic, 20)) == list(range(20))
        before = relay.replays  # a fresh broker gets earlier tests' rows of this schema replayed too
        first.stop()
        second.start()  # same address, no data: the relay's clients reconnect on their own
        await write(db, topic, range(20, 40))
        got = ns(await read_all(second.bootstrap, topic, 40, timeout=60))
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        first.stop()
        second.stop()
        await db.dispose()
    assert relay.replays == before + 1
    assert got == list(range(40))


async def test_a_relay_publishes_nothing_while_another_holds_the_turn(migrate_schema, kafka):
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.relay-turn.{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(db, settings(kafka.bootstrap), publishes=(topic,))
    holder_ready, release = asyncio.Event(), asyncio.Event()
    try:
        await relay._connect()
        await relay.check_broker()  # the marker, so that a batch may go out
        await write(db, topic, range(3))
        holder = asyncio.create_task(other_relay_mid_batch(db, holder_ready, release))
        await holder_ready.wait()
        assert relay._producer is not None
        assert await relay.publish_batch(relay._producer) == 0
        async with db.transaction(system=True) as s:
            unpublished = (
                await s.execute(
                    text("SELECT count(*) FROM outbox WHERE topic = :t AND published_at IS NULL"),
                    {"t": topic},
                )
            ).scalar_one()
        assert unpublished == 3
        release.set()
        await holder
        assert await relay.publish_batch(relay._producer) >= 3
        assert ns(await read_all(kafka.bootstrap, topic, 3)) == [0, 1, 2]
    finally:
        release.set()
        await relay._disconnect()
        await db.dispose()
