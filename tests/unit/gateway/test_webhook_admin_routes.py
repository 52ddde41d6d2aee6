"""The webhook administration routes: merge-patch bodies to proto3 presence, the rotation's overlap
bounds, and the answers' shapes, over a fake notification stub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from gpufleet.v1 import common_pb2, notification_pb2
from pydantic import ValidationError

from services.gateway.entrypoints.auth import Caller
from services.gateway.entrypoints.responses_webhooks import WebhookSecretRotate, WebhookUpdate
from services.gateway.entrypoints.routes import notification as routes
from shared.errors import NotFound

HOOK = "16fd2706-8baf-433b-82eb-8c7fada847da"
CALLER = Caller(
    principal=common_pb2.Principal(organization_id=HOOK), metadata=(("authorization", "k"),), timeout=5
)
WEBHOOK = notification_pb2.Webhook(id=HOOK, url="https://a.example/h", status="active", is_active=True)


@dataclass
class FakeNotification:
    calls: list[Any] = field(default_factory=list)

    async def UpdateWebhook(self, request, **kw):
        self.calls.append(request)
        return WEBHOOK

    async def RotateWebhookSecret(self, request, **kw):
        self.calls.append(request)
        return notification_pb2.RotatedWebhookSecret(
            webhook=WEBHOOK, secret="whsec_new", previous_secret_expires_at="2026-01-02T00:00:00Z"
        )

    async def RedeliverDelivery(self, request, **kw):
        self.calls.append(request)
        return notification_pb2.Delivery(id=request.id, event_id="e", status="pending", webhook_id=HOOK)


@dataclass
class Down:
    notification: FakeNotification = field(default_factory=FakeNotification)


async def test_patch_forwards_only_the_fields_present() -> None:
    down = Down()
    await routes.update_webhook(HOOK, WebhookUpdate.model_validate({"status": "disabled"}), CALLER, down)
    sent = down.notification.calls[-1]
    assert sent.HasField("status") and sent.status == "disabled"
    assert not (sent.HasField("url") or sent.HasField("events") or sent.HasField("description"))
    body = WebhookUpdate.model_validate({"events": [], "description": None, "url": "https://b.example/"})
    out = await routes.update_webhook(HOOK, body, CALLER, down)
    sent = down.notification.calls[-1]
    assert sent.HasField("events") and list(sent.events.names) == []  # every job event
    assert sent.HasField("description") and sent.description == ""  # null removes it
    assert sent.url == "https://b.example/" and not sent.HasField("status")
    assert out.id == HOOK and out.status == "active"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "paused"},
        {"url": "ftp://x.example/"},
        {"events": ["job.exploded"]},
        {"secret": "whsec_mine"},  # unknown fields are refused
        {"description": 5},
    ],
)
def test_patch_bodies_are_strict(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WebhookUpdate.model_validate(body)


async def test_rotate_forwards_the_overlap_only_when_given() -> None:
    down = Down()
    out = await routes.rotate_webhook_secret(HOOK, CALLER, down, None)
    assert not down.notification.calls[-1].HasField("overlap_seconds")
    assert out.secret == "whsec_new" and out.previous_secret_expires_at is not None
    await routes.rotate_webhook_secret(HOOK, CALLER, down, WebhookSecretRotate(overlap_seconds=0))
    sent = down.notification.calls[-1]
    assert sent.HasField("overlap_seconds") and sent.overlap_seconds == 0
    for bad in (-1, 7 * 86400 + 1, "60"):
        with pytest.raises(ValidationError):
            WebhookSecretRotate.model_validate({"overlap_seconds": bad})


async def test_redeliver_and_malformed_ids() -> None:
    down = Down()
    out = await routes.redeliver_delivery(HOOK, CALLER, down)
    assert (out.id, out.status, out.webhook_id) == (HOOK, "pending", HOOK)
    for call in (
        routes.redeliver_delivery("../x", CALLER, down),
        routes.rotate_webhook_secret("not an id", CALLER, down, None),
    ):
        with pytest.raises(NotFound):
            await call
