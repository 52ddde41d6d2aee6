"""The ``Signer`` port over the ``standardwebhooks`` reference library.

Signing does no I/O, but it is a third-party library call, so it lives here rather than in the domain
(which imports only the standard library and ``shared``): the domain owns the secret format
(``domain/signing.py``), the library owns the signature, and the worker only sees the port. Receivers
verify with the same library (or any Standard Webhooks implementation): ``Webhook(secret).verify(body,
headers)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from ..domain.signing import check_secret


class StandardWebhooksSigner:
    def headers(
        self, secret: str, message_id: str, at: datetime, body: bytes, *, also: Sequence[str] = ()
    ) -> dict[str, str]:
        """``webhook-id`` (the same across retries, so receivers can de-duplicate),
        ``webhook-timestamp`` (unix seconds of this attempt: receivers reject stale ones) and
        ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per secret,
        space-separated as the spec allows: during a rotation's overlap the new secret's and the old
        one's, so a receiver holding either verifies the message)."""
        # The library reads a naive-looking clock: give it UTC so that replace(tzinfo=utc) is a no-op.
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        text = body.decode()
        signature = " ".join(
            Webhook(check_secret(s)).sign(message_id, at, text) for s in dict.fromkeys((secret, *also))
        )
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(math.floor(at.timestamp())),
            "webhook-signature": signature,
        }
