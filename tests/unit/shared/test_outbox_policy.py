"""Outbox rules that need no broker: data-loss detection by offsets, the window, topic creation retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import UnknownError
from tenacity import wait_none

from shared import kafka
from shared.db import Database
from shared.outbox import REPLAY_WINDOW, OutboxRelay, lost_topics
from shared.settings import KafkaSettings

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


@pytest.mark.parametrize(
    ("ends", "existing", "lost"),
    [
        ({A0: 11, A1: 4, B0: 1}, {"a", "b"}, set()),  # every partition past what was acknowledged
        ({A0: 0, A1: 4, B0: 1}, {"a", "b"}, {"a"}),  # a came back empty
        ({A0: 10, A1: 4, B0: 1}, {"a", "b"}, {"a"}),  # truncated to before the acknowledged offset
        ({A1: 4, B0: 1}, {"a", "b"}, {"a"}),  # a partition is gone
        ({B0: 1}, {"b"}, {"a"}),  # the topic is gone
    ],
)
def test_a_partition_behind_its_acknowledged_offset_lost_records(ends, existing, lost) -> None:
    first_acked = {A0: 10, A1: 3, B0: 0}
    assert lost_topics(first_acked, ends, existing) == lost


def _settings() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1")


def test_the_outbox_may_not_keep_rows_longer_than_ledgers_are_kept() -> None:
    db = Database("postgresql://u:p@127.0.0.1:1/x", "billing")  # an engine only: nothing connects
    with pytest.raises(ValueError, match="replay window"):
        OutboxRelay(db, _settings(), publishes=("t",), retention=REPLAY_WINDOW + timedelta(seconds=1))
    relay = OutboxRelay(db, _settings(), publishes=("t",))
    assert relay.retention == REPLAY_WINDOW and relay.broker_connected is False and relay.published_total == 0


async def test_ensure_topics_retries_a_transient_broker_error(monkeypatch) -> None:
    outcomes: list[Exception | None] = [UnknownError(), UnknownError(), None]
    calls: list[list[str]] = []

    async def create(settings, wanted, partitions):
        calls.append(wanted)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(kafka, "_create_missing", create)
    await kafka.ensure_topics(_settings(), ["a", "b", "a"], wait=wait_none())
    assert calls == [["a", "b"]] * 3


async def test_ensure_topics_gives_up_after_its_attempts(monkeypatch) -> None:
    calls = 0

    async def create(settings, wanted, partitions):
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(kafka, "_create_missing", create)
    with pytest.raises(ConnectionRefusedError):
        await kafka.ensure_topics(_settings(), ["a"], attempts=4, wait=wait_none())
    assert calls == 4


async def test_disconnecting_does_not_wait_for_a_producer_that_never_stops(monkeypatch) -> None:
    """A producer's stop flushes what it holds; with the broker gone that never ends, and a relay that
    waited for it could neither reconnect nor be stopped."""
    import asyncio

    from shared import outbox

    class Stuck:
        async def stop(self) -> None:
            await asyncio.Event().wait()

        async def close(self) -> None:
            await asyncio.Event().wait()

    monkeypatch.setattr(outbox, "DISCONNECT_SECONDS", 0.05)
    db = Database("postgresql://u:p@127.0.0.1:1/x", "billing")
    relay = OutboxRelay(db, _settings(), publishes=("a",))
    relay._producer, relay._probe, relay._admin = Stuck(), Stuck(), Stuck()  # type: ignore[assignment]
    await asyncio.wait_for(relay._disconnect(), 2)
    assert relay._producer is None and relay._probe is None and relay._admin is None
    assert not relay.broker_connected
    await db.dispose()
