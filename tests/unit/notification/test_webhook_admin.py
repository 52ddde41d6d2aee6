"""Changing a webhook, rotating its secret with an overlap, redelivering a delivery (over the fakes)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from services.notification.adapters.signing import StandardWebhooksSigner
from services.notification.domain.model import (
    DISABLED_BY_HAND,
    Delivery,
    DeliveryStatus,
    SendResult,
    WebhookStatus,
    secret_overlap,
)
from services.notification.domain.retry import RetryPolicy
from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import commands, handlers
from services.notification.service_layer.worker import DeliveryWorker
from shared.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .fakes import FakeSender
from .test_handlers import ORG, deps, job_event


async def _hook(d, url: str = "http://a.example/hook"):  # type: ignore[no-untyped-def]
    return await handlers.create_webhook(commands.CreateWebhook(ORG, url, description="first"), d)


def _actions(d) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.data.action for a in d.uow.store.audits]


# --------------------------------------------------------------------------------------- update


async def test_update_changes_only_what_is_given_and_is_audited() -> None:
    d = deps()
    hook = (await _hook(d)).webhook
    updated = await handlers.handle(
        commands.UpdateWebhook(ORG, str(hook.id), events=("job.failed",), description=""), d
    )
    assert (updated.url, updated.events, updated.description) == (hook.url, ("job.failed",), None)
    stored = d.uow.store.webhooks[hook.id]
    assert (stored.events, stored.description, stored.signing_secret) == (
        ("job.failed",),
        None,
        hook.signing_secret,
    )
    record = d.uow.store.audits[-1].data
    assert record.action == "webhook.update" and record.target_id == str(hook.id)
    assert record.before["events"] == [] and record.after["events"] == ["job.failed"]
    assert "signing_secret" not in record.before and hook.signing_secret not in str(record)
    # Nothing to change: no write, no record.
    await handlers.handle(commands.UpdateWebhook(ORG, str(hook.id), events=("job.failed",)), d)
    assert _actions(d) == ["webhook.create", "webhook.update"]


async def test_update_checks_as_create_does() -> None:
    d = deps()
    hook = (await _hook(d)).webhook
    strict = handlers.Dependencies(uow=d.uow, allow_private_targets=False)
    bad = [
        (commands.UpdateWebhook(ORG, str(hook.id), url="ftp://a.example/"), d, "url"),
        (commands.UpdateWebhook(ORG, str(hook.id), url="http://169.254.169.254/latest"), strict, "url"),
        (commands.UpdateWebhook(ORG, str(hook.id), url="http://127.0.0.1:8080/"), strict, "url"),
        (commands.UpdateWebhook(ORG, str(hook.id), events=("job.exploded",)), d, "events"),
        (commands.UpdateWebhook(ORG, str(hook.id), description="x" * 10_000), d, "description"),
        (commands.UpdateWebhook(ORG, str(hook.id), status="paused"), d, "status"),
    ]
    for cmd, with_deps, field in bad:
        with pytest.raises(InvalidArgument) as err:
            await handlers.handle(cmd, with_deps)
        assert err.value.field == field, cmd
    assert d.uow.store.webhooks[hook.id].url == hook.url


async def test_update_of_another_organizations_or_a_missing_webhook_is_not_found() -> None:
    d = deps()
    hook = (await _hook(d)).webhook
    for cmd in (
        commands.UpdateWebhook(uuid.uuid4(), str(hook.id), description="theirs"),
        commands.UpdateWebhook(ORG, str(uuid.uuid4()), description="x"),
        commands.UpdateWebhook(ORG, "not-an-id", description="x"),
        commands.RotateWebhookSecret(uuid.uuid4(), str(hook.id)),
        commands.RotateWebhookSecret(ORG, "nope"),
    ):
        with pytest.raises(NotFound):
            await handlers.handle(cmd, d)
    assert d.uow.store.webhooks[hook.id].description == "first"
    bound = uuid.uuid4()
    for cmd in (
        commands.UpdateWebhook(ORG, str(hook.id), description="x", bound_project=bound),
        commands.RotateWebhookSecret(ORG, str(hook.id), bound_project=bound),
        commands.RedeliverDelivery(ORG, str(uuid.uuid4()), bound_project=bound),
    ):
        with pytest.raises(PermissionDenied):
            await handlers.handle(cmd, d)


async def test_re_enabling_forgets_the_failures_and_disabling_by_hand_closes_pending_deliveries() -> None:
    d = deps()
    created = await _hook(d)
    store = d.uow.store
    worker = DeliveryWorker(d, FakeSender(*[SendResult(503, None, 5)] * 10), StandardWebhooksSigner())
    await handlers.notify_job_event(to_command(job_event()), d)
    for _ in range(10):
        assert await worker.run_once() == 1
        store.now += timedelta(hours=1)
    assert store.webhooks[created.webhook.id].status is WebhookStatus.DISABLED
    again = await handlers.handle(commands.UpdateWebhook(ORG, str(created.webhook.id), status="active"), d)
    assert (again.status, again.consecutive_failures, again.error_rate, again.disabled_reason) == (
        WebhookStatus.ACTIVE,
        0,
        0.0,
        None,
    )
    assert _actions(d)[-1] == "webhook.update"
    assert d.uow.store.audits[-1].data.before["status"] == "disabled"
    # Off by hand: the next claim closes what is pending, with the reason.
    await handlers.notify_job_event(to_command(job_event()), d)
    off = await handlers.handle(commands.UpdateWebhook(ORG, str(created.webhook.id), status="disabled"), d)
    assert (off.status, off.disabled_reason) == (WebhookStatus.DISABLED, DISABLED_BY_HAND)
    assert await worker.run_once() == 0
    assert {x.status for x in store.deliveries.values()} == {DeliveryStatus.FAILED}


async def test_a_new_url_takes_the_pending_deliveries() -> None:
    d = deps()
    hook = (await _hook(d)).webhook
    await handlers.notify_job_event(to_command(job_event()), d)
    sender = FakeSender()
    await handlers.handle(commands.UpdateWebhook(ORG, str(hook.id), url="http://b.example/new"), d)
    assert await DeliveryWorker(d, sender, StandardWebhooksSigner()).run_once() == 1
    assert sender.sent[0][0] == "http://b.example/new"


# --------------------------------------------------------------------------------------- rotate


async def test_rotation_signs_with_both_secrets_until_the_overlap_ends() -> None:
    d = deps()
    created = await _hook(d)
    store = d.uow.store
    rotated = await handlers.handle(
        commands.RotateWebhookSecret(ORG, str(created.webhook.id), overlap_seconds=3600), d
    )
    assert rotated.secret.startswith("whsec_") and rotated.secret != created.secret
    assert rotated.webhook.previous_secret_expires_at == store.now + timedelta(hours=1)
    record = store.audits[-1].data
    assert record.action == "webhook.rotate_secret"
    assert record.after["overlap_until"] and record.before["overlap_until"] is None
    assert created.secret not in str(record) and rotated.secret not in str(record)

    sender = FakeSender()
    worker = DeliveryWorker(d, sender, StandardWebhooksSigner())
    await handlers.notify_job_event(to_command(job_event()), d)
    assert await worker.run_once() == 1
    _url, headers, body = sender.sent[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Verifier(created.secret).verify(body, headers)  # a receiver still on the old secret
    Verifier(rotated.secret).verify(body, headers)  # one that switched already

    store.now += timedelta(hours=1, seconds=1)  # the overlap is over: the new secret only
    await handlers.notify_job_event(to_command(job_event()), d)
    assert await worker.run_once() == 1
    _url, headers, body = sender.sent[-1]
    assert len(headers["webhook-signature"].split(" ")) == 1
    Verifier(rotated.secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(created.secret).verify(body, headers)


async def test_rotation_overlap_bounds_and_default() -> None:
    assert secret_overlap(None) == timedelta(hours=24)
    assert secret_overlap(0) == timedelta(0) and secret_overlap(7 * 86400) == timedelta(days=7)
    d = deps()
    hook = (await _hook(d)).webhook
    for seconds in (-1, 7 * 86400 + 1):
        with pytest.raises(InvalidArgument) as err:
            await handlers.handle(commands.RotateWebhookSecret(ORG, str(hook.id), overlap_seconds=seconds), d)
        assert err.value.field == "overlap_seconds"
    first = await handlers.handle(commands.RotateWebhookSecret(ORG, str(hook.id)), d)
    assert first.webhook.previous_secret_expires_at == d.uow.store.now + timedelta(hours=24)
    now = await handlers.handle(commands.RotateWebhookSecret(ORG, str(hook.id), overlap_seconds=0), d)
    stored = d.uow.store.webhooks[hook.id]
    assert (stored.signing_secret, stored.previous_signing_secret, stored.previous_secret_expires_at) == (
        now.secret,
        None,
        None,
    )


async def test_the_job_webhook_secret_rotates_with_an_overlap_too() -> None:
    d = deps()
    store = d.uow.store
    await handlers.notify_job_event(to_command(job_event(webhook_url="http://job.example/x")), d)
    old = await handlers.get_job_webhook_secret(commands.GetJobWebhookSecret(ORG, "owner"), d)
    for role in ("member", "viewer"):
        with pytest.raises(PermissionDenied):
            await handlers.handle(commands.RotateJobWebhookSecret(ORG, role), d)
    with pytest.raises(PermissionDenied):
        await handlers.handle(commands.RotateJobWebhookSecret(ORG, "owner", bound_project=uuid.uuid4()), d)
    with pytest.raises(InvalidArgument):
        await handlers.handle(commands.RotateJobWebhookSecret(ORG, "admin", overlap_seconds=-5), d)
    rotated = await handlers.handle(commands.RotateJobWebhookSecret(ORG, "admin", overlap_seconds=60), d)
    assert rotated.secret != old and rotated.previous_expires_at == store.now + timedelta(seconds=60)
    assert (
        await handlers.get_job_webhook_secret(commands.GetJobWebhookSecret(ORG, "owner"), d) == rotated.secret
    )
    record = store.audits[-1].data
    assert (record.action, record.target_type, record.target_id) == (
        "job_webhook_secret.rotate",
        "job_webhook_secret",
        str(ORG),
    )
    assert old not in str(record) and rotated.secret not in str(record)
    sender = FakeSender()
    assert await DeliveryWorker(d, sender, StandardWebhooksSigner()).run_once() == 1
    _url, headers, body = sender.sent[-1]
    Verifier(old).verify(body, headers)
    Verifier(rotated.secret).verify(body, headers)


# ------------------------------------------------------------------------------------ redeliver


async def _settled(d, results: list[SendResult]) -> Delivery:  # type: ignore[no-untyped-def]
    worker = DeliveryWorker(d, FakeSender(*results), StandardWebhooksSigner())
    await handlers.notify_job_event(to_command(job_event()), d)
    for _ in results:
        assert await worker.run_once() == 1
        d.uow.store.now += timedelta(hours=2)
    (delivery,) = d.uow.store.deliveries.values()
    return delivery


async def test_redelivering_a_delivered_one_sends_it_again_with_the_same_event_id() -> None:
    d = deps()
    created = await _hook(d)
    delivery = await _settled(d, [SendResult(200, None, 1)])
    assert delivery.status is DeliveryStatus.DELIVERED
    again = await handlers.handle(commands.RedeliverDelivery(ORG, str(delivery.id)), d)
    assert (again.status, again.delivered_at, again.attempts) == (DeliveryStatus.PENDING, None, 1)
    assert d.wakeup.is_set()
    record = d.uow.store.audits[-1].data
    assert (record.action, record.target_type, record.target_id) == (
        "delivery.redeliver",
        "delivery",
        str(delivery.id),
    )
    assert (record.before["status"], record.after["status"]) == ("delivered", "pending")
    # One at a time: refused while it is pending.
    with pytest.raises(Conflict):
        await handlers.handle(commands.RedeliverDelivery(ORG, str(delivery.id)), d)
    sender = FakeSender()
    assert await DeliveryWorker(d, sender, StandardWebhooksSigner()).run_once() == 1
    _url, headers, body = sender.sent[0]
    assert headers["webhook-id"] == str(delivery.event_id)
    Verifier(created.secret).verify(body, headers)
    stored = d.uow.store.deliveries[delivery.id]
    assert (stored.status, stored.attempts) == (DeliveryStatus.DELIVERED, 2)


async def test_a_redelivered_failure_gets_a_fresh_retry_schedule() -> None:
    d = deps(policy=RetryPolicy(base_seconds=1, max_attempts=2))
    await _hook(d)
    failed = await _settled(d, [SendResult(500, None, 1)] * 2)
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 2)
    await handlers.handle(commands.RedeliverDelivery(ORG, str(failed.id)), d)
    worker = DeliveryWorker(d, FakeSender(SendResult(500, None, 1)), StandardWebhooksSigner())
    assert await worker.run_once() == 1
    retried = d.uow.store.deliveries[failed.id]
    # Attempt 3 is the first of a new schedule of 2: retried, not given up at once.
    assert (retried.status, retried.attempts, retried.scheduled_attempts) == (DeliveryStatus.PENDING, 3, 1)


async def test_redeliver_refuses_a_disabled_webhook_and_another_organizations_delivery() -> None:
    d = deps()
    hook = (await _hook(d)).webhook
    delivery = await _settled(d, [SendResult(200, None, 1)])
    for cmd in (
        commands.RedeliverDelivery(uuid.uuid4(), str(delivery.id)),
        commands.RedeliverDelivery(ORG, str(uuid.uuid4())),
        commands.RedeliverDelivery(ORG, "not-an-id"),
    ):
        with pytest.raises(NotFound):
            await handlers.handle(cmd, d)
    assert d.uow.store.deliveries[delivery.id].status is DeliveryStatus.DELIVERED
    await handlers.handle(commands.UpdateWebhook(ORG, str(hook.id), status="disabled"), d)
    with pytest.raises(FailedPrecondition):
        await handlers.handle(commands.RedeliverDelivery(ORG, str(delivery.id)), d)
