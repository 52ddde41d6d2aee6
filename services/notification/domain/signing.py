"""Webhook signing secrets in the Standard Webhooks format (https://www.standardwebhooks.com/), pure.

A secret is ``whsec_`` + base64 of 24 to 64 random bytes; the HMAC key is the decoded bytes. Computing
signatures is the ``standardwebhooks`` library's job, behind the ``Signer`` port
(``adapters/signing.py``): the domain keeps the secret's format and refuses malformed ones before any
library sees them, because the library decodes leniently (a secret without the prefix, or with
characters outside base64, would silently become some other key).
"""

from __future__ import annotations

import base64
import binascii
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 bytes


class InvalidSecret(ValueError):
    pass


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def check_secret(secret: str) -> str:
    """``secret`` when it is a well-formed ``whsec_`` secret; raises :class:`InvalidSecret` otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("webhook secrets start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("webhook secret is not base64") from exc
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return secret
