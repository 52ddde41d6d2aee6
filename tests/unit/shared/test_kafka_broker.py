"""Direct publishes survive transient broker errors, and give up after a bounded number of tries."""

import pytest
from aiokafka.errors import UnknownError
from faststream.kafka import KafkaBroker
from tenacity import wait_none

from shared.kafka import RetryingKafkaBroker


async def test_transient_errors_are_retried(monkeypatch):
    outcomes = [UnknownError(), UnknownError(), "ok"]
    calls = []

    async def flaky_publish(self, *args, **kwargs):
        calls.append((args, kwargs))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(KafkaBroker, "publish", flaky_publish)
    monkeypatch.setattr(RetryingKafkaBroker, "publish_wait", wait_none())
    broker = RetryingKafkaBroker("127.0.0.1:1")
    assert await broker.publish(b"x", topic="t") == "ok"
    assert len(calls) == 3 and calls[0] == ((b"x",), {"topic": "t"})


async def test_persistent_errors_surface_after_the_last_try(monkeypatch):
    calls = 0

    async def broken(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        raise UnknownError()

    monkeypatch.setattr(KafkaBroker, "publish", broken)
    monkeypatch.setattr(RetryingKafkaBroker, "publish_wait", wait_none())
    with pytest.raises(UnknownError):
        await RetryingKafkaBroker("127.0.0.1:1").publish(b"x", topic="t")
    assert calls == RetryingKafkaBroker.publish_attempts
