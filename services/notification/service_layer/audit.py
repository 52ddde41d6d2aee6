"""What notification records in the one audit log (docs/audit.md): its callers' webhook changes
(``webhook.create``, ``webhook.delete``), with the webhook's state before and after. Never the signing
secret: the state leaves it out, and :func:`shared.audit.redact` would replace it anyway."""

from __future__ import annotations

from typing import Any

from shared import audit as shared_audit
from shared.contracts.audit import AuditRecordedV1
from shared.events import Envelope

from ..domain.model import Webhook

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
