"""Bodies of the webhook administration routes (routes/notification.py): changing a webhook, rotating its
signing secret. Requests are strict like every other body; their bounds are notification's own
(``shared.contracts.limits``; the overlap's bound is ``services/notification/domain/model.py``'s)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from services.gateway.entrypoints.requests import HttpUrlText, Text, WebhookEventName, _StrictBody
from services.gateway.entrypoints.responses import WebhookOut
from shared.contracts import limits

MAX_SECRET_OVERLAP_SECONDS = 7 * 24 * 3600
DEFAULT_SECRET_OVERLAP_SECONDS = 24 * 3600


class WebhookUpdate(_StrictBody):
    """JSON merge semantics: a field left out is unchanged; ``description: null`` removes it."""

    url: HttpUrlText | None = Field(default=None, description="Checked as at creation.")
    events: Annotated[list[WebhookEventName], Field(max_length=limits.MAX_WEBHOOK_EVENTS)] | None = Field(
        default=None, description="Event types to deliver; empty = every job event."
    )
    description: Annotated[Text, Field(max_length=limits.MAX_DESCRIPTION)] | None = None
    status: Literal["active", "disabled"] | None = Field(
        default=None,
        description="active: re-enable (its failure count and error rate start over); disabled: "
        "switch it off by hand (its pending deliveries are closed).",
    )


class WebhookSecretRotate(_StrictBody):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECRET_OVERLAP_SECONDS,
        description="How long the replaced secret keeps signing beside the new one (every delivery "
        "carries both signatures meanwhile). Absent: 86400 (24 h); 0: it stops at once.",
    )


class RotatedWebhookSecretOut(WebhookOut):
    secret: str = Field(description="The new signing secret (whsec_...). Shown once.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the replaced secret signs too; null: it no longer does."
    )


class RotatedJobWebhookSecretOut(BaseModel):
    secret: str = Field(description="The new job webhook secret (whsec_...). Shown once.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the replaced secret signs too; null: it no longer does."
    )
