"""Endpoint health through the handlers and the worker over fakes: 410 Gone, late and out-of-order
attempts, and what ``consecutive_failures`` counts."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping
from datetime import timedelta

import pytest

from services.notification.adapters.signing import StandardWebhooksSigner
from services.notification.domain.model import GONE_REASON, DeliveryStatus, Outcome, SendResult, WebhookStatus
from services.notification.domain.retry import RetryPolicy
from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import commands
from services.notification.service_layer.handlers import HANDLERS, Dependencies, handle
from services.notification.service_layer.worker import DeliveryWorker

from .fakes import FakeSender, FakeUnitOfWorkFactory, RecordingMetrics
from .test_handlers import ORG, job_event

OK = SendResult(204, None, 3)
FAIL = SendResult(503, "HTTP 503", 3)
GONE = SendResult(410, "HTTP 410", 3)
LEASE = timedelta(seconds=60)


def deps() -> Dependencies:
    return Dependencies(
        uow=FakeUnitOfWorkFactory(),
        allow_private_targets=True,
        policy=RetryPolicy(base_seconds=1, max_attempts=20),
        metrics=RecordingMetrics(),
        rand=lambda: 1.0,
    )


class GatedSender:
    """Each send waits until the test opens the gate of its URL and call number, then answers what
    the test put there: completions happen in whatever order the test chooses."""

    def __init__(self) -> None:
        self.gates: dict[tuple[str, int], asyncio.Future[SendResult]] = {}
        self.calls: dict[str, int] = {}
        self.started = asyncio.Event()

    def gate(self, url: str, call: int) -> asyncio.Future[SendResult]:
        return self.gates.setdefault((url, call), asyncio.get_running_loop().create_future())

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> SendResult:
        self.calls[url] = self.calls.get(url, 0) + 1
        self.started.set()
        return await self.gate(url, self.calls[url])

    def answer(self, url: str, call: int, result: SendResult) -> None:
        self.gate(url, call).set_result(result)


async def settle() -> None:
    for _ in range(20):  # let the answered attempts record themselves
        await asyncio.sleep(0)


def test_every_command_has_its_handler_and_nothing_else_is_handled() -> None:
    declared = {
        obj
        for obj in vars(commands).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == commands.__name__
    }
    assert set(HANDLERS) == declared


async def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(TypeError, match="no handler"):
        await handle(object(), deps())


async def hook_with(d: Dependencies, url: str) -> uuid.UUID:
    created = await handle(commands.CreateWebhook(ORG, url), d)
    return created.webhook.id


async def test_410_disables_the_webhook_at_once_and_closes_its_other_deliveries_unsent() -> None:
    d = deps()
    hook = await hook_with(d, "http://a.example/")
    store = d.uow.store
    for _ in range(2):
        await handle(to_command(job_event()), d)
    sender = FakeSender(GONE, OK)
    worker = DeliveryWorker(d, sender, StandardWebhooksSigner(), concurrency=1)
    assert await worker.run_once() == 1
    webhook = store.webhooks[hook]
    assert (webhook.status, webhook.disabled_reason, webhook.disabled_at) == (
        WebhookStatus.DISABLED,
        GONE_REASON,
        store.now,
    )
    assert await worker.run_once() == 0  # the other delivery is closed, not sent
    assert len(sender.sent) == 1
    by_status = sorted((x.status, x.attempts, x.last_error) for x in store.deliveries.values())
    assert by_status == [
        (DeliveryStatus.FAILED, 0, f"webhook disabled: {GONE_REASON}"),
        (DeliveryStatus.FAILED, 1, "HTTP 410"),
    ]
    assert d.metrics.outcomes == ["gone", "disabled"]
    assert await handle(to_command(job_event()), d) == 0  # offered no new events


async def test_410_on_a_jobs_own_url_stops_that_message_only() -> None:
    d = deps()
    store = d.uow.store
    url = "http://job.example/hook"
    await handle(to_command(job_event(webhook_url=url)), d)
    await handle(to_command(job_event(webhook_url=url)), d)
    sender = FakeSender(GONE, FAIL)
    worker = DeliveryWorker(d, sender, StandardWebhooksSigner(), concurrency=1)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 1  # the next message to the same URL is still tried
    store.now += timedelta(hours=1)
    assert await worker.run_once() == 1  # ... and retried; the gone one is not
    other, gone = sorted(store.deliveries.values(), key=lambda x: x.last_error or "")
    assert (gone.status, gone.attempts, gone.last_error) == (DeliveryStatus.FAILED, 1, "HTTP 410")
    assert (other.status, other.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert d.metrics.outcomes == ["gone", "retrying", "delivered"]


async def test_a_late_failure_of_a_delivered_message_does_not_count() -> None:
    d = deps()
    hook = await hook_with(d, "http://a.example/")
    store = d.uow.store
    await handle(to_command(job_event()), d)
    (first,) = await handle(commands.ClaimDueDeliveries(4, LEASE), d)
    store.now += LEASE  # the first worker stalls past its lease: the delivery falls due again
    (second,) = await handle(commands.ClaimDueDeliveries(4, LEASE), d)
    assert first.delivery.id == second.delivery.id
    assert (
        await handle(commands.RecordDeliveryResult(second.delivery.id, OK, store.now), d) is Outcome.DELIVERED
    )
    assert await handle(commands.RecordDeliveryResult(first.delivery.id, FAIL, store.now), d) is Outcome.LATE
    webhook = store.webhooks[hook]
    (delivery,) = store.deliveries.values()
    assert (webhook.consecutive_failures, webhook.is_active) == (0, True)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.DELIVERED, 2, None)
    assert d.metrics.outcomes == ["delivered", "late"]


async def test_failures_count_in_completion_order_not_start_order() -> None:
    d = deps()
    hook = await hook_with(d, "http://a.example/")
    store = d.uow.store
    for _ in range(3):
        await handle(to_command(job_event()), d)
    a, b, c = await handle(commands.ClaimDueDeliveries(4, LEASE), d)

    async def record(due, result) -> int:  # type: ignore[no-untyped-def]
        await handle(commands.RecordDeliveryResult(due.delivery.id, result, store.now), d)
        return store.webhooks[hook].consecutive_failures

    # Started a, b, c; completed c (fail), a (ok), b (fail): only b's failure is after the last success.
    assert [await record(c, FAIL), await record(a, OK), await record(b, FAIL)] == [1, 0, 1]
    store.now += timedelta(hours=1)
    b2, c2 = await handle(commands.ClaimDueDeliveries(4, LEASE), d)
    assert [await record(b2, OK), await record(c2, OK)] == [0, 0]
    assert all(x.status is DeliveryStatus.DELIVERED for x in store.deliveries.values())


async def test_concurrent_attempts_through_the_worker_end_at_zero_when_every_message_is_delivered() -> None:
    d = deps()
    hook = await hook_with(d, "http://a.example/")
    store = d.uow.store
    for _ in range(3):
        await handle(to_command(job_event()), d)
    sender = GatedSender()
    stalled = DeliveryWorker(d, sender, StandardWebhooksSigner(), concurrency=4)
    round1 = asyncio.create_task(stalled.run_once())  # all three in flight at once
    await sender.started.wait()
    url = "http://a.example/"
    # Out of order: the second and third answer before the first; the third fails.
    sender.answer(url, 2, OK)
    sender.answer(url, 3, FAIL)
    await settle()
    assert store.webhooks[hook].consecutive_failures == 1
    # The first attempt stalls past its lease; a second worker retries everything due and succeeds.
    store.now += LEASE + timedelta(hours=1)
    retry = DeliveryWorker(d, FakeSender(OK, OK), StandardWebhooksSigner(), concurrency=4)
    assert await retry.run_once() == 2
    assert store.webhooks[hook].consecutive_failures == 0
    sender.answer(url, 1, FAIL)  # the stalled attempt finally fails: its message is already delivered
    await round1
    webhook = store.webhooks[hook]
    assert all(x.status is DeliveryStatus.DELIVERED for x in store.deliveries.values())
    assert (webhook.consecutive_failures, webhook.is_active) == (0, True)
    assert sorted(d.metrics.outcomes) == sorted(["delivered", "retrying", "delivered", "delivered", "late"])


async def test_the_backlog_gauge_counts_due_unclaimed_deliveries() -> None:
    d = deps()
    await hook_with(d, "http://a.example/")
    for _ in range(3):
        await handle(to_command(job_event()), d)
    summary = await handle(commands.MeasurePending(), d)
    assert (summary.due, summary.next_due_in) == (3, 0.0)
    await handle(commands.ClaimDueDeliveries(2, LEASE), d)
    summary = await handle(commands.MeasurePending(), d)
    assert (summary.due, summary.next_due_in) == (1, 0.0)
    assert d.metrics.due_counts == [3, 1]


async def test_the_worker_run_loop_refreshes_the_gauge_and_survives_a_database_outage() -> None:
    d = deps()
    await hook_with(d, "http://a.example/")
    await handle(to_command(job_event()), d)
    failing = {"left": 2}
    real = d.uow

    def flaky(**kw):  # type: ignore[no-untyped-def]
        if failing["left"] > 0:
            failing["left"] -= 1
            raise ConnectionError("database is down")
        return real(**kw)

    d2 = dataclasses.replace(d, uow=flaky)
    worker = DeliveryWorker(d2, FakeSender(), StandardWebhooksSigner(), concurrency=2, poll_seconds=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(5):
        while not all(x.status is DeliveryStatus.DELIVERED for x in real.store.deliveries.values()):
            await asyncio.sleep(0.01)
        while 0 not in d.metrics.due_counts:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert failing["left"] == 0 and d.metrics.outcomes == ["delivered"]


async def test_a_failed_recording_is_retried_so_the_message_is_not_sent_again() -> None:
    d = deps()
    await hook_with(d, "http://a.example/")
    await handle(to_command(job_event()), d)
    real, calls = d.uow, {"n": 0}

    def flaky(**kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the first try at recording the attempt (the claim was call 1)
            raise ConnectionError("connection reset")
        return real(**kw)

    sender = FakeSender()
    worker = DeliveryWorker(
        dataclasses.replace(d, uow=flaky), sender, StandardWebhooksSigner(), concurrency=1
    )
    assert await worker.run_once() == 1
    (delivery,) = real.store.deliveries.values()
    assert (delivery.status, delivery.attempts, len(sender.sent)) == (DeliveryStatus.DELIVERED, 1, 1)


async def test_a_malformed_secret_fails_the_delivery_without_sending() -> None:
    d = deps()
    hook = await hook_with(d, "http://a.example/")
    d.uow.store.webhooks[hook].signing_secret = "not-a-whsec-secret"
    await handle(to_command(job_event()), d)
    sender = FakeSender()
    assert await DeliveryWorker(d, sender, StandardWebhooksSigner()).run_once() == 1
    (delivery,) = d.uow.store.deliveries.values()
    assert sender.sent == [] and delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error is not None and delivery.last_error.startswith("cannot sign")
