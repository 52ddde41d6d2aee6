"""What notification records in the one audit log (docs/audit.md): its callers' webhook changes
(``webhook.create``, ``webhook.update``, ``webhook.rotate_secret``, ``webhook.delete``), with the
webhook's state before and after, and redeliveries (``delivery.redeliver``). Never a signing secret:
the state leaves them out (a rotation records only until when the old secret still signs), and
:func:`shared.audit.redact` would replace them anyway."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from shared import audit as shared_audit
from shared.contracts.audit import AuditRecordedV1
from shared.events import Envelope

from ..domain.model import Delivery, Webhook

SERVICE = "notification"


def webhook_state(webhook: Webhook) -> dict[str, Any]:
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "status": webhook.status.value,
    }


def webhook_change(
    action: str, webhook: Webhook, *, before: Webhook | None, after: Webhook | None
) -> Envelope[AuditRecordedV1]:
    return shared_audit.build(
        SERVICE,
        action,
        "webhook",
        webhook.id,
        organization_id=webhook.organization_id,
        before=webhook_state(before) if before is not None else None,
        after=webhook_state(after) if after is not None else None,
    )


def secret_rotation(before: Webhook, after: Webhook) -> Envelope[AuditRecordedV1]:
    """``webhook.rotate_secret``: the webhook's state and until when the replaced secret signs."""

    def state(w: Webhook) -> dict[str, Any]:
        until = w.previous_secret_expires_at
        return {**webhook_state(w), "overlap_until": until.isoformat() if until else None}

    return shared_audit.build(
        SERVICE,
        "webhook.rotate_secret",
        "webhook",
        after.id,
        organization_id=after.organization_id,
        before=state(before),
        after=state(after),
    )


def job_secret_rotation(organization_id: UUID, overlap_until: datetime | None) -> Envelope[AuditRecordedV1]:
    """``job_webhook_secret.rotate``: the organization's job webhook secret was replaced (the target is
    the organization); ``after`` says until when the replaced one signs, never a secret."""
    return shared_audit.build(
        SERVICE,
        "job_webhook_secret.rotate",
        "job_webhook_secret",
        organization_id,
        organization_id=organization_id,
        before=None,
        after={"overlap_until": overlap_until.isoformat() if overlap_until else None},
    )


def delivery_state(d: Delivery) -> dict[str, Any]:
    return {
        "webhook_id": str(d.webhook_id) if d.webhook_id else None,
        "event_id": str(d.event_id),
        "event_type": d.event_type,
        "url": d.url,
        "status": d.status.value,
        "attempts": d.attempts,
    }


def redelivery(before: Delivery, after: Delivery) -> Envelope[AuditRecordedV1]:
    return shared_audit.build(
        SERVICE,
        "delivery.redeliver",
        "delivery",
        after.id,
        organization_id=after.organization_id,
        before=delivery_state(before),
        after=delivery_state(after),
    )
