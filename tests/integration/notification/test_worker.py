"""The delivery worker against real PostgreSQL and a real HTTP receiver on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as Verifier

from services.notification.bootstrap import NotificationApp
from services.notification.domain.model import SendResult
from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import commands, handlers
from services.notification.service_layer.unit_of_work import PendingSummary
from shared.contracts import jobs

from .conftest import Harness, job_event, receiving

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running(app: NotificationApp) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await app.close()


async def delivery_rows(harness: Harness, org: uuid.UUID) -> list:
    async with harness.db.transaction(org_id=org) as s:
        return (
            await s.execute(
                text(
                    "SELECT id, webhook_id, url, status, attempts, last_error, delivered_at, payload "
                    "FROM webhook_deliveries ORDER BY url"
                )
            )
        ).all()


async def attempt_rows(harness: Harness, org: uuid.UUID) -> list:
    async with harness.db.transaction(org_id=org) as s:
        return (
            await s.execute(
                text(
                    "SELECT delivery_id, attempt, response_status, error FROM webhook_attempts "
                    "ORDER BY delivery_id, attempt"
                )
            )
        ).all()


def settled(harness: Harness, org: uuid.UUID, count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        rows = await delivery_rows(harness, org)
        return len(rows) == count and all(r.status != "pending" for r in rows)

    return check


async def test_deliveries_arrive_signed_and_verifiable(harness: Harness) -> None:
    async with receiving(204) as rx:
        app = harness.app()
        org = uuid.uuid4()
        created = await handlers.create_webhook(
            commands.CreateWebhook(org, rx.url, ("job.failed",)), app.deps
        )
        env = job_event(org, jobs.JOB_FAILED, webhook_url=rx.url + "?job=1")
        await handlers.notify_job_event(to_command(env), app.deps)
        job_secret = await handlers.get_job_webhook_secret(
            commands.GetJobWebhookSecret(org, "owner"), app.deps
        )
        async with running(app):
            await rx.wait_for(2)
            await harness.wait_until(settled(harness, org, 2))

    rows = await delivery_rows(harness, org)
    by_url = {r.url: r for r in rows}
    assert all(r.status == "delivered" and r.attempts == 1 and r.delivered_at for r in rows)
    for request in rx.requests:
        if request.path == "/hooks":
            secret, delivery = created.secret, by_url[rx.url]
        else:
            secret, delivery = job_secret, by_url[rx.url + "?job=1"]
        # The CloudEvent id (it used to be the delivery's own id), also the body's "id".
        assert request.headers["webhook-id"] == str(env.id) == json.loads(request.body)["id"]
        assert Verifier(secret).verify(request.body, request.headers)["type"] == "job.failed"
        assert request.body == delivery.payload
        with pytest.raises(Exception, match="signature"):  # the other secret must not verify it
            Verifier(job_secret if secret == created.secret else created.secret).verify(
                request.body, request.headers
            )
    assert json.loads(rx.requests[0].body)["data"]["job_id"] == str(env.data.job.job_id)
    assert [(a.attempt, a.response_status, a.error) for a in await attempt_rows(harness, org)] == [
        (1, 204, None)
    ] * 2
    hook = await harness.scalar(
        "SELECT last_used IS NOT NULL AND consecutive_failures = 0 FROM webhooks WHERE id = :i",
        i=created.webhook.id,
    )
    assert hook is True


async def test_failures_are_retried_then_given_up(harness: Harness) -> None:
    async with receiving(500) as rx:
        app = harness.app(notification_max_attempts=3)
        org = uuid.uuid4()
        created = await handlers.create_webhook(commands.CreateWebhook(org, rx.url), app.deps)
        event = job_event(org)
        await handlers.notify_job_event(to_command(event), app.deps)
        async with running(app):
            await harness.wait_until(settled(harness, org, 1))

    (delivery,) = await delivery_rows(harness, org)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")
    assert [(a.attempt, a.response_status, a.error) for a in await attempt_rows(harness, org)] == [
        (1, 500, "HTTP 500"),
        (2, 500, "HTTP 500"),
        (3, 500, "HTTP 500"),
    ]
    # The same id on every retry: the event's CloudEvent id (it used to be the delivery's own id).
    assert {r.headers["webhook-id"] for r in rx.requests} == {str(event.id)}
    assert (
        await harness.scalar("SELECT consecutive_failures FROM webhooks WHERE id = :i", i=created.webhook.id)
        == 3
    )


async def test_ten_consecutive_failures_disable_the_webhook(harness: Harness) -> None:
    async with receiving(500) as rx:
        app = harness.app(notification_max_attempts=20)
        org = uuid.uuid4()
        created = await handlers.create_webhook(commands.CreateWebhook(org, rx.url), app.deps)
        await handlers.notify_job_event(to_command(job_event(org)), app.deps)
        async with running(app):
            await harness.wait_until(settled(harness, org, 1), timeout=60)
        # A disabled webhook is offered no new events.
        assert await handlers.notify_job_event(to_command(job_event(org)), app.deps) == 0

    (delivery,) = await delivery_rows(harness, org)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        10,
        "webhook disabled: 10 consecutive failed attempts",
    )
    assert len(await attempt_rows(harness, org)) == 10 and len(rx.requests) == 10
    async with harness.db.transaction(org_id=org) as s:
        hook = (
            await s.execute(text("SELECT * FROM webhooks WHERE id = :i"), {"i": created.webhook.id})
        ).one()
    assert (hook.status, hook.is_active, hook.consecutive_failures) == ("disabled", False, 10)
    assert hook.disabled_at is not None and hook.error_rate > 0.6
    assert hook.disabled_reason == "10 consecutive failed attempts"


async def test_private_targets_are_refused_unless_allowed(harness: Harness) -> None:
    async with receiving(204) as rx:
        app = harness.app(notification_allow_private_targets=False)
        org = uuid.uuid4()
        await handlers.notify_job_event(to_command(job_event(org, webhook_url=rx.url)), app.deps)
        async with running(app):
            await harness.wait_until(settled(harness, org, 1))
        assert rx.requests == []

    (delivery,) = await delivery_rows(harness, org)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    (attempt,) = await attempt_rows(harness, org)
    assert attempt.response_status is None
    assert "refused" in attempt.error and "127.0.0.1" in attempt.error


async def test_410_gone_disables_the_webhook_at_once_and_stops_the_jobs_own_url(harness: Harness) -> None:
    async with receiving(410) as rx:
        app = harness.app(notification_max_attempts=8)
        org = uuid.uuid4()
        created = await handlers.create_webhook(commands.CreateWebhook(org, rx.url), app.deps)
        await handlers.notify_job_event(to_command(job_event(org, webhook_url=rx.url + "?job=1")), app.deps)
        async with running(app):
            await harness.wait_until(settled(harness, org, 2))
            # A later event finds the webhook off: only the job's own URL is offered it.
            assert await handlers.notify_job_event(to_command(job_event(org)), app.deps) == 0

    rows = await delivery_rows(harness, org)
    assert [(r.url, r.status, r.attempts, r.last_error) for r in rows] == [
        (rx.url, "failed", 1, "HTTP 410"),
        (rx.url + "?job=1", "failed", 1, "HTTP 410"),
    ]
    assert len(rx.requests) == 2  # one attempt each, no retries
    async with harness.db.transaction(org_id=org) as s:
        hook = (
            await s.execute(text("SELECT * FROM webhooks WHERE id = :i"), {"i": created.webhook.id})
        ).one()
    assert (hook.status, hook.is_active, hook.disabled_reason) == (
        "disabled",
        False,
        "the endpoint answered 410 Gone",
    )
    assert hook.disabled_at is not None and hook.consecutive_failures == 1


async def test_a_late_failure_after_delivery_leaves_the_endpoint_at_zero_failures(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    created = await handlers.create_webhook(commands.CreateWebhook(org, "http://127.0.0.1:9/x"), app.deps)
    await handlers.notify_job_event(to_command(job_event(org)), app.deps)
    lease = timedelta(seconds=0)  # the first claim's lease ends at once: the row is due again

    async def claim_mine():  # type: ignore[no-untyped-def]
        # Other tests' deliveries may be due in this database too: pick ours.
        claimed = await handlers.handle(commands.ClaimDueDeliveries(200, lease), app.deps)
        (mine,) = [c for c in claimed if c.delivery.organization_id == org]
        return mine

    first = await claim_mine()
    second = await claim_mine()
    assert first.delivery.id == second.delivery.id
    now = datetime.now(UTC)
    ok, fail = SendResult(204, None, 5), SendResult(503, "HTTP 503", 5)
    assert (
        await handlers.handle(commands.RecordDeliveryResult(second.delivery.id, ok, now), app.deps)
        == "delivered"
    )
    assert (
        await handlers.handle(commands.RecordDeliveryResult(first.delivery.id, fail, now), app.deps) == "late"
    )
    (delivery,) = await delivery_rows(harness, org)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, None)
    assert [(a.attempt, a.response_status) for a in await attempt_rows(harness, org)] == [(1, 204), (2, 503)]
    assert (
        await harness.scalar("SELECT consecutive_failures FROM webhooks WHERE id = :i", i=created.webhook.id)
        == 0
    )
    await app.close()


async def test_the_backlog_counts_due_deliveries_and_not_claimed_ones(harness: Harness) -> None:
    app = harness.app()
    org = uuid.uuid4()
    await handlers.create_webhook(commands.CreateWebhook(org, "http://127.0.0.1:9/x"), app.deps)
    # Nothing else runs meanwhile, but other tests' rows may be due: measure the difference.
    before: PendingSummary = await handlers.handle(commands.MeasurePending(), app.deps)
    await handlers.notify_job_event(to_command(job_event(org, webhook_url="http://127.0.0.1:9/j")), app.deps)
    after: PendingSummary = await handlers.handle(commands.MeasurePending(), app.deps)
    assert after.due == before.due + 2
    assert after.next_due_in is not None and after.next_due_in <= 0
    claimed = await handlers.handle(commands.ClaimDueDeliveries(500, timedelta(minutes=5)), app.deps)
    assert len([c for c in claimed if c.delivery.organization_id == org]) == 2
    held: PendingSummary = await handlers.handle(commands.MeasurePending(), app.deps)
    assert held.due == 0  # everything due was just claimed
    await app.close()
