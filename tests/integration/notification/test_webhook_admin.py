"""UpdateWebhook, RotateWebhookSecret and RedeliverDelivery over gRPC, on real PostgreSQL with the real
HTTP sender and signer: a receiver verifies with the standardwebhooks library, audit records land in
the outbox with the change."""

from __future__ import annotations

import uuid

import grpc
import pytest
from gpufleet.v1 import common_pb2, notification_pb2
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from services.notification.entrypoints.consumers import to_command
from services.notification.service_layer import handlers
from shared.contracts import audit as audit_contract

from .conftest import Api, Harness, Receiver, job_event, receiving
from .test_grpc import expect

pytestmark = pytest.mark.integration


async def _audits(harness: Harness, target: str) -> list[audit_contract.AuditRecordedV1]:
    async with harness.db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
                {"t": audit_contract.AUDIT_RECORDED},
            )
        ).all()
    found = [audit_contract.AuditRecordedV1.model_validate_json(bytes(r.payload)) for r in rows]
    return [a for a in found if a.target_id == target]


async def _deliver_one(api: Api, org: uuid.UUID, rx: Receiver) -> None:
    """One job event of ``org`` fanned out, and the worker run until the receiver got one more."""
    before = len(rx.requests)
    await handlers.notify_job_event(to_command(job_event(org)), api.app.deps)
    while len(rx.requests) <= before:  # other tests' leftovers may be claimed too
        await api.app.worker.run_once()


async def test_update_merges_checks_and_re_enables(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    key = harness.identity.key(org, "member")
    hook = (
        await api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="https://a.example/h", description="first"),
            metadata=key,
        )
    ).webhook
    req = notification_pb2.UpdateWebhookRequest(
        id=hook.id, events=notification_pb2.WebhookEventNames(names=["job.failed"])
    )
    updated = await api.stub.UpdateWebhook(req, metadata=key)
    assert (updated.url, list(updated.events), updated.description) == (hook.url, ["job.failed"], "first")
    cleared = await api.stub.UpdateWebhook(
        notification_pb2.UpdateWebhookRequest(
            id=hook.id, url="https://b.example/h", description="", events=notification_pb2.WebhookEventNames()
        ),
        metadata=key,
    )
    assert (cleared.url, list(cleared.events), cleared.description) == ("https://b.example/h", [], "")

    # Switched off by a run of failures, then back on: the failures are forgotten.
    await harness.scalar(
        "UPDATE webhooks SET status = 'disabled', is_active = false, consecutive_failures = 10, "
        "error_rate = 0.9, disabled_at = now(), disabled_reason = '10 consecutive failed attempts' "
        "WHERE id = :id RETURNING 1",
        id=uuid.UUID(hook.id),
    )
    again = await api.stub.UpdateWebhook(
        notification_pb2.UpdateWebhookRequest(id=hook.id, status="active"), metadata=key
    )
    assert (again.status, again.is_active, again.consecutive_failures, again.error_rate) == (
        "active",
        True,
        0,
        0,
    )
    assert (
        await harness.scalar("SELECT disabled_reason FROM webhooks WHERE id = :id", id=uuid.UUID(hook.id))
        is None
    )

    stranger = harness.identity.key(uuid.uuid4(), "owner")
    for who, request, code in (
        (
            stranger,
            notification_pb2.UpdateWebhookRequest(id=hook.id, description="x"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            key,
            notification_pb2.UpdateWebhookRequest(id=str(uuid.uuid4()), description="x"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            key,
            notification_pb2.UpdateWebhookRequest(id=hook.id, url="file:///etc/passwd"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            key,
            notification_pb2.UpdateWebhookRequest(id=hook.id, status="paused"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            harness.identity.key(org, "viewer"),
            notification_pb2.UpdateWebhookRequest(id=hook.id, description="x"),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
    ):
        await expect(code, api.stub.UpdateWebhook(request, metadata=who))
    (listed,) = (await api.stub.ListWebhooks(common_pb2.Empty(), metadata=key)).webhooks
    assert (listed.url, listed.description) == ("https://b.example/h", "")

    records = await _audits(harness, hook.id)
    assert [r.action for r in records] == ["webhook.create"] + ["webhook.update"] * 3
    assert records[-1].before["status"] == "disabled" and records[-1].after["status"] == "active"
    assert (
        records[2].before["url"] == "https://a.example/h" and records[2].after["url"] == "https://b.example/h"
    )


async def test_rotation_signs_with_both_secrets_during_the_overlap(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    key = harness.identity.key(org, "admin")
    async with receiving(204) as rx:
        created = await api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url=rx.url), metadata=key
        )
        hook_id = created.webhook.id
        rotated = await api.stub.RotateWebhookSecret(
            notification_pb2.RotateWebhookSecretRequest(id=hook_id, overlap_seconds=3600), metadata=key
        )
        assert rotated.secret.startswith("whsec_") and rotated.secret != created.secret
        assert rotated.previous_secret_expires_at.endswith("Z")
        await _deliver_one(api, org, rx)
        got = rx.requests[-1]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Verifier(created.secret).verify(got.body, got.headers)  # a receiver still holding the old secret
        Verifier(rotated.secret).verify(got.body, got.headers)  # one that switched

        # Once the overlap is over (the database's clock decides), the new secret alone signs.
        await harness.scalar(
            "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = :id "
            "RETURNING 1",
            id=uuid.UUID(hook_id),
        )
        await _deliver_one(api, org, rx)
        got = rx.requests[-1]
        Verifier(rotated.secret).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Verifier(created.secret).verify(got.body, got.headers)

        at_once = await api.stub.RotateWebhookSecret(
            notification_pb2.RotateWebhookSecretRequest(id=hook_id, overlap_seconds=0), metadata=key
        )
        assert at_once.previous_secret_expires_at == ""
        await _deliver_one(api, org, rx)
        got = rx.requests[-1]
        Verifier(at_once.secret).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Verifier(rotated.secret).verify(got.body, got.headers)

    for who, request, code in (
        (
            harness.identity.key(uuid.uuid4(), "owner"),
            notification_pb2.RotateWebhookSecretRequest(id=hook_id),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            key,
            notification_pb2.RotateWebhookSecretRequest(id=hook_id, overlap_seconds=8 * 86400),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            key,
            notification_pb2.RotateWebhookSecretRequest(id=hook_id, overlap_seconds=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        await expect(code, api.stub.RotateWebhookSecret(request, metadata=who))
    default = await api.stub.RotateWebhookSecret(
        notification_pb2.RotateWebhookSecretRequest(id=hook_id), metadata=key
    )
    hours = await harness.scalar(
        "SELECT extract(epoch FROM previous_secret_expires_at - now()) / 3600 FROM webhooks WHERE id = :id",
        id=uuid.UUID(hook_id),
    )
    assert 23.9 < float(hours) <= 24 and default.previous_secret_expires_at

    records = await _audits(harness, hook_id)
    assert [r.action for r in records] == ["webhook.create"] + ["webhook.rotate_secret"] * 3
    dumped = " ".join(r.model_dump_json() for r in records)
    for secret in (created.secret, rotated.secret, at_once.secret, default.secret):
        assert secret not in dumped
    assert records[1].after["overlap_until"] and records[2].after["overlap_until"] is None


async def test_redeliver_sends_again_with_the_same_event_id(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    key = harness.identity.key(org, "member")
    async with receiving(204) as rx:
        created = await api.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url=rx.url), metadata=key
        )
        await _deliver_one(api, org, rx)
        (delivery,) = (
            await api.stub.ListDeliveries(
                notification_pb2.ListDeliveriesRequest(webhook_id=created.webhook.id), metadata=key
            )
        ).deliveries
        assert delivery.status == "delivered"
        again = await api.stub.RedeliverDelivery(
            notification_pb2.RedeliverDeliveryRequest(id=delivery.id), metadata=key
        )
        assert (again.id, again.event_id, again.status, again.delivered_at) == (
            delivery.id,
            delivery.event_id,
            "pending",
            "",
        )
        assert len(again.attempt_log) == 1
        await expect(
            grpc.StatusCode.ALREADY_EXISTS,
            api.stub.RedeliverDelivery(
                notification_pb2.RedeliverDeliveryRequest(id=delivery.id), metadata=key
            ),
        )
        before = len(rx.requests)
        while len(rx.requests) <= before:
            await api.app.worker.run_once()
        first, second = rx.requests[-2], rx.requests[-1]
        assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery.event_id
        assert second.body == first.body
        Verifier(created.secret).verify(second.body, second.headers)

    async def settled() -> bool:
        (d,) = (
            await api.stub.ListDeliveries(
                notification_pb2.ListDeliveriesRequest(webhook_id=created.webhook.id), metadata=key
            )
        ).deliveries
        return d.status == "delivered" and d.attempts == 2

    await harness.wait_until(settled)
    stranger = harness.identity.key(uuid.uuid4(), "owner")
    for who, ident, code in (
        (stranger, delivery.id, grpc.StatusCode.NOT_FOUND),
        (key, str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
        (key, "nope", grpc.StatusCode.NOT_FOUND),
        (harness.identity.key(org, "viewer"), delivery.id, grpc.StatusCode.PERMISSION_DENIED),
    ):
        await expect(
            code,
            api.stub.RedeliverDelivery(notification_pb2.RedeliverDeliveryRequest(id=ident), metadata=who),
        )
    await api.stub.UpdateWebhook(
        notification_pb2.UpdateWebhookRequest(id=created.webhook.id, status="disabled"), metadata=key
    )
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        api.stub.RedeliverDelivery(notification_pb2.RedeliverDeliveryRequest(id=delivery.id), metadata=key),
    )
    (record,) = await _audits(harness, delivery.id)
    assert (record.action, record.target_type, record.before["status"], record.after["status"]) == (
        "delivery.redeliver",
        "delivery",
        "delivered",
        "pending",
    )
    assert str(record.organization_id) == str(org)


async def test_the_job_webhook_secret_rotates_with_an_overlap(api: Api, harness: Harness) -> None:
    org = uuid.uuid4()
    admin = harness.identity.key(org, "admin")
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        api.stub.RotateJobWebhookSecret(
            notification_pb2.RotateJobWebhookSecretRequest(), metadata=harness.identity.key(org, "member")
        ),
    )
    old = (await api.stub.GetJobWebhookSecret(common_pb2.Empty(), metadata=admin)).secret
    rotated = await api.stub.RotateJobWebhookSecret(
        notification_pb2.RotateJobWebhookSecretRequest(overlap_seconds=600), metadata=admin
    )
    assert rotated.secret != old and rotated.previous_secret_expires_at.endswith("Z")
    assert (await api.stub.GetJobWebhookSecret(common_pb2.Empty(), metadata=admin)).secret == rotated.secret
    async with receiving(204) as rx:
        await handlers.notify_job_event(to_command(job_event(org, webhook_url=rx.url + "/job")), api.app.deps)
        while not rx.requests:
            await api.app.worker.run_once()
        got = rx.requests[-1]
        Verifier(old).verify(got.body, got.headers)
        Verifier(rotated.secret).verify(got.body, got.headers)
    at_once = await api.stub.RotateJobWebhookSecret(
        notification_pb2.RotateJobWebhookSecretRequest(overlap_seconds=0), metadata=admin
    )
    assert at_once.previous_secret_expires_at == ""
    stored = await harness.scalar(
        "SELECT previous_secret IS NULL FROM job_webhook_secrets WHERE organization_id = :o", o=org
    )
    assert stored is True
    records = await _audits(harness, str(org))
    assert [r.action for r in records] == ["job_webhook_secret.rotate"] * 2
    assert old not in str(records) and rotated.secret not in str(records)
