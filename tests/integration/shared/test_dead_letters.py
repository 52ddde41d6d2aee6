"""Poison records against the real broker: dead-lettered with their reason, the partition moves on, an
outage counts nothing against a record, and ``python -m shared.deadletters`` lists and re-drives them."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid

import pytest
from prometheus_client import REGISTRY

from shared import deadletters
from shared.consumers import claim, refresh_consumer_lag, subscribe, subscribe_batch
from shared.db import Database
from shared.events import Envelope, header_map
from shared.kafka import consumer_lag, ensure_topics, make_broker

from .topics import MODELS, Ping, read_all, settings

pytestmark = pytest.mark.integration


async def publish(broker, topic: str, envs: list[Envelope]) -> None:
    for e in envs:  # one key: one partition, so the poison record sits in front of the others
        await broker.publish(e.value(), topic=topic, key=b"same", headers=header_map(e.headers()))


async def wait_for(condition, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def consumed(topic: str, group: str, outcome: str) -> float:
    labels = {"topic": topic, "consumer": group, "outcome": outcome}
    return REGISTRY.get_sample_value("gpufleet_events_consumed_total", labels) or 0.0


async def test_a_poison_event_is_dead_lettered_and_the_events_behind_it_are_processed(kafka):
    topic = f"test.poison.{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    applied: list[int] = []
    outage = [ConnectionRefusedError(111, "refused")] * 4  # more failures than max_attempts

    async def handle(env: Envelope) -> None:
        if env.data.n == 0 and outage:
            raise outage.pop()
        if env.data.n == 2:
            raise ValueError(f"cannot apply ping {env.data.n}")
        applied.append(env.data.n)

    broker = make_broker(settings(kafka.bootstrap), "test-poison")
    subscribe(broker, topic, group_id=group, models=MODELS, handle=handle, max_attempts=3, retry_delay=0.01)
    envs = [Envelope(type="test.ping", source="test", data=Ping(n=n)) for n in range(5)]
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    await broker.start()
    try:
        await publish(broker, topic, envs)
        await wait_for(lambda: len(applied) == 4)
        dlq = await read_all(kafka.bootstrap, f"{topic}.dlq", 1)
    finally:
        await broker.stop()

    assert applied == [0, 1, 3, 4]  # the outage on 0 was waited out; 2 was parked; 3 and 4 went on
    assert len(dlq) == 1
    h = header_map(dlq[0].headers)
    assert h["x-dlq-reason"] == "ValueError: cannot apply ping 2"
    assert h["x-dlq-attempts"] == "3" and h["x-dlq-consumer"] == group
    assert h["x-dlq-source-topic"] == topic and h["ce_id"] == str(envs[2].id)
    assert dlq[0].value == envs[2].value() and dlq[0].key == b"same"
    assert consumed(topic, group, "processed") == 4 and consumed(topic, group, "dead_lettered") == 1
    dead = REGISTRY.get_sample_value(
        "gpufleet_events_dead_lettered_total", {"topic": topic, "consumer": group}
    )
    assert dead == 1.0
    lag = await refresh_consumer_lag(kafka.bootstrap, group, [topic])
    assert lag == {topic: 0}
    assert REGISTRY.get_sample_value("gpufleet_consumer_lag_events", {"topic": topic, "consumer": group}) == 0
    assert await consumer_lag(kafka.bootstrap, f"never-{group}", [topic]) == {topic: 5}  # nothing committed


async def test_a_batch_with_a_poison_event_applies_the_rest(kafka):
    topic = f"test.poison-batch.{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    applied: list[int] = []

    async def handle(envelopes: list[Envelope]) -> None:
        if any(e.data.n == 3 for e in envelopes):
            raise ValueError("ping 3 is poison")
        applied.extend(e.data.n for e in envelopes)

    broker = make_broker(settings(kafka.bootstrap), "test-poison-batch")
    subscribe_batch(
        broker, topic, group_id=group, models=MODELS, handle=handle, max_attempts=2, retry_delay=0.01
    )
    envs = [Envelope(type="test.ping", source="test", data=Ping(n=n)) for n in range(8)]
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    await broker.start()
    try:
        await publish(broker, topic, envs)
        await wait_for(lambda: len(applied) == 7)
        dlq = await read_all(kafka.bootstrap, f"{topic}.dlq", 1)
    finally:
        await broker.stop()
    assert applied == [0, 1, 2, 4, 5, 6, 7]
    assert [header_map(r.headers)["ce_id"] for r in dlq] == [str(envs[3].id)]


async def test_dead_letters_are_listed_and_re_driven_once(migrate_schema, kafka, kafka_env, monkeypatch):
    for name, value in kafka_env.items():  # the command's default broker comes from the environment
        monkeypatch.setenv(name, value)
    db = Database(await migrate_schema("billing"), "billing")
    topic = f"test.redrive.{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    applied: list[int] = []
    fixed = asyncio.Event()  # the "bug fix": until it is set, ping 1 cannot be applied

    async def handle(env: Envelope) -> None:
        if env.data.n == 1 and not fixed.is_set():
            raise ValueError("ping 1 needs a fix")
        async with db.transaction(system=True) as s:
            if await claim(s, group, env.id):
                applied.append(env.data.n)

    broker = make_broker(settings(kafka.bootstrap), "test-redrive")
    subscribe(broker, topic, group_id=group, models=MODELS, handle=handle, max_attempts=1)
    envs = [Envelope(type="test.ping", source="test", data=Ping(n=n)) for n in range(3)]
    await ensure_topics(settings(kafka.bootstrap), (topic,))
    await broker.start()
    try:
        await publish(broker, topic, envs)
        await wait_for(lambda: sorted(applied) == [0, 2])
        await read_all(kafka.bootstrap, f"{topic}.dlq", 1)

        listing = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.deadletters", "list", "--topic", f"{topic}.dlq",
            env=dict(os.environ), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(listing.communicate(), 60)
        assert listing.returncode == 0
        lines = [json.loads(line) for line in stdout.decode().splitlines()]
        assert len(lines) == 1
        assert lines[0]["ce_id"] == str(envs[1].id) and lines[0]["ce_type"] == "test.ping"
        assert lines[0]["reason"] == "ValueError: ping 1 needs a fix" and lines[0]["consumer"] == group
        assert lines[0]["source_topic"] == topic and lines[0]["source_offset"] == 1
        assert {"offset", "key", "attempts"} <= set(lines[0])

        fixed.set()
        out = io.StringIO()
        args = [
            "redrive",
            "--topic",
            f"{topic}.dlq",
            "--bootstrap",
            kafka.bootstrap,
            "--ce-id",
            str(envs[1].id),
        ]
        assert await deadletters.amain(args, out=out) == 0
        assert json.loads(out.getvalue())["redriven"] is True
        await wait_for(lambda: sorted(applied) == [0, 1, 2])
        assert (
            await deadletters.amain(["redrive", "--topic", f"{topic}.dlq", "--all"], out=io.StringIO()) == 0
        )
        source = await read_all(kafka.bootstrap, topic, 5)
        await wait_for(lambda: consumed(topic, group, "processed") >= 4)  # the second re-drive arrived
    finally:
        await broker.stop()
        await db.dispose()
    assert sorted(applied) == [0, 1, 2]  # re-driven twice, applied once
    redriven = header_map(source[-1].headers)
    assert redriven["ce_id"] == str(envs[1].id) and not any(k.startswith("x-dlq-") for k in redriven)
    assert source[-1].value == envs[1].value()
