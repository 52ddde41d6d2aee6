"""Standard Webhooks signing (https://www.standardwebhooks.com/), pure functions.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded bytes. Each attempt is
signed over ``f"{webhook_id}.{timestamp}.{body}"`` with HMAC-SHA256 and sent as the three headers
``webhook-id`` (the same across retries, so receivers can de-duplicate), ``webhook-timestamp`` (unix
seconds of this attempt: receivers reject stale ones) and ``webhook-signature`` (``v1,<base64>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 bytes


class InvalidSecret(ValueError):
    pass


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key behind a ``whsec_`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("webhook secrets start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("webhook secret is not base64") from exc
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return key


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt made at ``at``."""
    timestamp = int(at.timestamp())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
        "content-type": "application/json",
    }
