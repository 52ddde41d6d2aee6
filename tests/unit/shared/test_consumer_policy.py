"""The consumer retry policy: what counts against a record, when it is dead-lettered, how batches split."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError, UnknownError
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from shared.consumers import (
    HandlerGaveUp,
    RetryPolicy,
    _Consumer,
    apply_batch,
    call_with_policy,
    is_infrastructure_error,
    prune_processed_events,
)
from shared.events import Envelope, header_map
from shared.outbox import REPLAY_WINDOW


def _caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _invalidated() -> DBAPIError:
    err = DBAPIError("SELECT 1", {}, Exception("gone"))
    err.connection_invalidated = True
    return err


@pytest.mark.parametrize(
    ("exc", "infrastructure"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (OSError("no route to host"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), True),
        (OperationalError("SELECT 1", {}, Exception("server closed")), True),
        (InterfaceError("SELECT 1", {}, Exception("connection is closed")), True),
        (_invalidated(), True),
        (_caused(RuntimeError("wrapped"), ConnectionRefusedError()), True),
        (KafkaConnectionError(), True),
        (NotLeaderForPartitionError(), True),
        (ValueError("bad payload"), False),
        (KeyError("price"), False),
        (IntegrityError("INSERT", {}, Exception("duplicate")), False),
        (DBAPIError("SELECT 1", {}, Exception("syntax")), False),
        (UnknownError(), False),
        (_caused(ValueError("wrapped"), KeyError("x")), False),
    ],
)
def test_infrastructure_errors_are_told_from_bad_records(exc: BaseException, infrastructure: bool) -> None:
    assert is_infrastructure_error(exc) is infrastructure


class Clock:
    """A fake monotonic clock that the fake sleep advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*outcomes: BaseException | None):
    """A handler call that raises each outcome in turn (None: succeeds) and then succeeds forever."""
    queue = list(outcomes)
    calls = []

    async def call() -> None:
        calls.append(1)
        outcome = queue.pop(0) if queue else None
        if outcome is not None:
            raise outcome

    call.calls = calls  # type: ignore[attr-defined]
    return call


async def test_a_record_that_keeps_failing_gives_up_after_max_attempts_with_exponential_backoff() -> None:
    clock = Clock()
    call = failing(*[ValueError("poison")] * 10)
    with pytest.raises(HandlerGaveUp) as gave_up:
        await call_with_policy(call, RetryPolicy(max_attempts=5), sleep=clock.sleep, clock=clock)
    assert len(call.calls) == 5 and gave_up.value.attempts == 5
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert gave_up.value.reason == "ValueError: poison"
    assert isinstance(gave_up.value.cause, ValueError)


async def test_a_record_that_recovers_is_applied() -> None:
    clock = Clock()
    call = failing(ValueError("flaky"), ValueError("flaky"))
    await call_with_policy(call, RetryPolicy(max_attempts=5), sleep=clock.sleep, clock=clock)
    assert len(call.calls) == 3


async def test_an_outage_is_waited_out_without_counting_against_the_record() -> None:
    clock = Clock()
    outage = [ConnectionRefusedError(111, "refused")] * 12
    call = failing(*outage)
    policy = RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=4.0, outage_window=600.0)
    await call_with_policy(call, policy, sleep=clock.sleep, clock=clock)
    assert len(call.calls) == 13  # 12 failures, far beyond max_attempts, and then success
    assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 4.0] and max(clock.sleeps) == 4.0  # capped


async def test_only_non_infrastructure_failures_count() -> None:
    clock = Clock()
    bad, down = ValueError("bad"), OSError("down")
    call = failing(bad, bad, down, down, down, bad, down, bad, bad, bad)
    with pytest.raises(HandlerGaveUp) as gave_up:
        await call_with_policy(call, RetryPolicy(max_attempts=5), sleep=clock.sleep, clock=clock)
    assert gave_up.value.attempts == 5
    assert len(call.calls) == 9  # the fifth counted failure is the ninth call


async def test_an_outage_longer_than_the_window_hands_the_record_back_uncounted() -> None:
    clock = Clock()
    call = failing(*[OSError("down")] * 1000)
    with pytest.raises(OSError):
        await call_with_policy(
            call,
            RetryPolicy(max_attempts=1, max_delay=10.0, outage_window=60.0),
            sleep=clock.sleep,
            clock=clock,
        )
    assert 60.0 <= clock.now < 75.0


def test_a_policy_needs_one_attempt_at_least() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# ---------------------------------------------------------------------------------------- batches


class Ping(BaseModel):
    n: int


class Record:
    """What aiokafka hands over: enough of a ConsumerRecord for dead-lettering."""

    def __init__(self, topic: str, offset: int, env: Envelope) -> None:
        self.topic, self.partition, self.offset, self.key = topic, 0, offset, b"k"
        self.value = env.value()
        self.headers = env.headers()


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[dict] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None, headers: dict) -> None:
        self.published.append({"value": value, "topic": topic, "key": key, "headers": headers})


def batch(topic: str, count: int) -> list[tuple[Record, Envelope]]:
    items = []
    for n in range(count):
        env = Envelope(type="test.ping", source="test", data=Ping(n=n))
        items.append((Record(topic, 100 + n, env), env))
    return items


def dead_lettered(topic: str) -> float:
    return (
        REGISTRY.get_sample_value("gpufleet_events_dead_lettered_total", {"topic": topic, "consumer": "g"})
        or 0.0
    )


async def test_a_failing_batch_is_split_and_only_its_poison_records_are_dead_lettered() -> None:
    topic = f"t.{uuid.uuid4().hex[:6]}"
    broker = FakeBroker()
    consumer = _Consumer(broker, topic, "g", RetryPolicy(max_attempts=3, initial_delay=0.0))  # type: ignore[arg-type]
    applied: list[int] = []
    poison = {3, 7}

    async def handle(envelopes: list[Envelope]) -> None:
        ns = [e.data.n for e in envelopes]
        if poison & set(ns):
            raise ValueError(f"cannot apply {sorted(poison & set(ns))}")
        applied.extend(ns)

    await apply_batch(batch(topic, 10), handle, consumer)

    assert applied == [0, 1, 2, 4, 5, 6, 8, 9]  # in order, each once
    assert [p["topic"] for p in broker.published] == [f"{topic}.dlq"] * 2
    first = header_map(broker.published[0]["headers"])
    assert first["x-dlq-reason"] == "ValueError: cannot apply [3]"
    assert first["x-dlq-error-type"] == "ValueError"
    assert first["x-dlq-consumer"] == "g"
    assert first["x-dlq-source-topic"] == topic and first["x-dlq-source-offset"] == "103"
    assert int(first["x-dlq-attempts"]) > 3  # the batch's attempts, then the halves that held it
    assert first["ce_type"] == "test.ping"
    assert dead_lettered(topic) == 2.0


async def test_a_batch_failing_for_an_outage_is_handed_back_whole() -> None:
    topic = f"t.{uuid.uuid4().hex[:6]}"
    broker = FakeBroker()
    policy = RetryPolicy(max_attempts=1, initial_delay=0.0, outage_window=0.0)
    consumer = _Consumer(broker, topic, "g", policy)  # type: ignore[arg-type]

    async def handle(envelopes: list[Envelope]) -> None:
        raise ConnectionResetError(104, "reset")

    with pytest.raises(ConnectionResetError):
        await apply_batch(batch(topic, 4), handle, consumer)
    assert broker.published == []


# ---------------------------------------------------------------------------------------- ledger


async def test_the_ledger_is_never_pruned_inside_the_replay_window() -> None:
    with pytest.raises(ValueError, match="replay window"):
        await prune_processed_events(object(), REPLAY_WINDOW - timedelta(seconds=1))  # type: ignore[arg-type]
