"""Handlers and the delivery worker over in-memory fakes: fan-out, tenancy, signing, retries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from services.notification.adapters.signing import StandardWebhooksSigner
from services.notification.domain.model import DeliveryStatus, SendResult, Webhook, WebhookStatus
from services.notification.domain.retry import RetryPolicy
from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import commands, handlers
from services.notification.service_layer.handlers import Dependencies
from services.notification.service_layer.worker import DeliveryWorker
from shared.contracts import jobs
from shared.errors import InvalidArgument, NotFound, PermissionDenied
from shared.events import Envelope

from .fakes import FakeSender, FakeUnitOfWorkFactory, RecordingMetrics

ORG = uuid.uuid4()


def deps(uow: FakeUnitOfWorkFactory | None = None, policy: RetryPolicy | None = None) -> Dependencies:
    return Dependencies(
        uow=uow or FakeUnitOfWorkFactory(),
        allow_private_targets=True,
        policy=policy or RetryPolicy(base_seconds=1, max_attempts=12),
        metrics=RecordingMetrics(),
        rand=lambda: 1.0,
    )


def job_event(event_type: str = jobs.JOB_SUCCEEDED, webhook_url: str | None = None, org=ORG) -> Envelope:
    snapshot = jobs.JobSnapshotV1(
        job_id=uuid.uuid4(),
        organization_id=org,
        status="succeeded",
        command="true",
        gpu_count=1,
        gpu_memory_mb=0,
        priority=0,
        webhook_url=webhook_url,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        exit_code=0,
    )
    return Envelope(
        type=event_type, source="scheduler", data=jobs.JobEventV1(job=snapshot), organization_id=str(org)
    )


async def add_hook(d: Dependencies, url: str, events: tuple[str, ...] = (), org=ORG) -> Webhook:
    return (await handlers.create_webhook(commands.CreateWebhook(org, url, events), d)).webhook


def test_converter_keeps_the_snapshot_as_json_values() -> None:
    env = job_event(webhook_url="http://job.example/hook")
    cmd = to_command(env)
    assert (cmd.event_id, cmd.event_type, cmd.organization_id) == (env.id, jobs.JOB_SUCCEEDED, ORG)
    assert cmd.webhook_url == "http://job.example/hook"
    assert cmd.job["job_id"] == str(env.data.job.job_id) and cmd.job["created_at"] == "2025-01-01T00:00:00Z"


async def test_event_fans_out_to_subscribed_webhooks_and_the_jobs_own_url_once() -> None:
    d = deps()
    every = await add_hook(d, "http://a.example/all")
    await add_hook(d, "http://b.example/failed-only", ("job.failed",))
    succeeded = await add_hook(d, "http://c.example/succeeded", ("job.succeeded",))
    await add_hook(d, "http://d.example/other-org", (), org=uuid.uuid4())
    env = job_event(webhook_url="http://a.example/all")  # same URL as a webhook: one delivery
    assert await handlers.notify_job_event(to_command(env), d) == 2
    assert d.wakeup.is_set()
    assert await handlers.notify_job_event(to_command(env), d) == 0  # redelivered event: nothing new
    made = d.uow.store.deliveries.values()
    assert {x.webhook_id for x in made} == {every.id, succeeded.id}
    body = json.loads(next(iter(made)).payload)
    assert body["type"] == "job.succeeded" and body["data"]["job_id"] == str(env.data.job.job_id)


async def test_a_jobs_own_url_gets_the_organizations_secret_created_on_first_need() -> None:
    d = deps()
    await handlers.notify_job_event(to_command(job_event(webhook_url="http://job.example/x")), d)
    (delivery,) = d.uow.store.deliveries.values()
    assert delivery.webhook_id is None and ORG in d.uow.store.secrets
    secret = await handlers.get_job_webhook_secret(commands.GetJobWebhookSecret(ORG, "admin"), d)
    assert secret == d.uow.store.secrets[ORG]


async def test_disabled_webhooks_get_nothing() -> None:
    d = deps()
    hook = await add_hook(d, "http://a.example/")
    d.uow.store.webhooks[hook.id].status = WebhookStatus.DISABLED
    assert await handlers.notify_job_event(to_command(job_event()), d) == 0


async def test_tenant_rules() -> None:
    d = deps()
    with pytest.raises(InvalidArgument):
        await add_hook(d, "http://a.example/", ("job.exploded",))
    with pytest.raises(PermissionDenied):
        await handlers.get_job_webhook_secret(commands.GetJobWebhookSecret(ORG, "member"), d)
    hook = await add_hook(d, "http://a.example/")
    for other in (commands.DeleteWebhook(uuid.uuid4(), str(hook.id)), commands.DeleteWebhook(ORG, "nope")):
        with pytest.raises(NotFound):
            await handlers.delete_webhook(other, d)
    await handlers.delete_webhook(commands.DeleteWebhook(ORG, str(hook.id)), d)
    assert await handlers.handle(commands.ListWebhooks(ORG), d) == []
    with pytest.raises(InvalidArgument):
        await handlers.list_deliveries(commands.ListDeliveries(ORG, limit=-1), d)


async def test_worker_signs_retries_and_disables_a_failing_webhook() -> None:
    d = deps()
    created = await handlers.create_webhook(commands.CreateWebhook(ORG, "http://a.example/"), d)
    store = d.uow.store
    sender = FakeSender(*[SendResult(503, None, 5)] * 12)
    worker = DeliveryWorker(d, sender, StandardWebhooksSigner(), concurrency=4)
    await handlers.notify_job_event(to_command(job_event()), d)
    assert await worker.run_once() == 1
    _url, headers, body = sender.sent[0]
    Verifier(created.secret).verify(body, headers)  # raises if the signature is wrong
    (delivery,) = store.deliveries.values()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.PENDING,
        1,
        "HTTP 503",
    )
    assert delivery.next_attempt_at == store.now + timedelta(seconds=1)
    for _ in range(9):
        store.now += timedelta(hours=1)
        assert await worker.run_once() == 1
    hook = store.webhooks[created.webhook.id]
    assert (hook.status, hook.consecutive_failures) == (WebhookStatus.DISABLED, 10)
    store.now += timedelta(hours=1)
    assert await worker.run_once() == 0  # not sent again: closed because its webhook is off
    (delivery,) = store.deliveries.values()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.FAILED,
        10,
        "webhook disabled: 10 consecutive failed attempts",
    )
    assert d.metrics.outcomes == ["retrying"] * 10 + ["disabled"]
    assert len(d.metrics.latencies) == 10
    # One id across retries: the event's CloudEvent id (it used to be the delivery's own id).
    assert {h["webhook-id"] for _, h, _ in sender.sent} == {str(delivery.event_id)}
    assert json.loads(sender.sent[0][2])["id"] == str(delivery.event_id)


async def test_a_batch_is_one_transaction_that_fans_out_each_event_once_and_logs_in_order_per_org() -> None:
    d = deps()
    other = uuid.uuid4()
    await add_hook(d, "http://a.example/all")
    await add_hook(d, "http://b.example/all", org=other)
    first, second = job_event(jobs.JOB_STARTED), job_event(jobs.JOB_SUCCEEDED)
    theirs = job_event(jobs.JOB_FAILED, org=other)
    commits = d.uow.store.commits
    batch = tuple(to_command(e) for e in (first, theirs, second, first))  # `first` redelivered in the batch
    assert await handlers.handle(commands.NotifyEvents(batch), d) == 3
    assert d.uow.store.commits == commits + 1
    logged = [(org, event.event_id) for org, event, _ in d.uow.store.log]
    assert [e for o, e in logged if o == ORG] == [first.id, second.id]
    assert [e for o, e in logged if o == other] == [theirs.id]
    assert await handlers.handle(commands.NotifyEvents(batch), d) == 0  # the whole batch again
