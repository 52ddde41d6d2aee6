"""Our Standard Webhooks signatures, checked by the reference library (standardwebhooks)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notification.domain.signing import (
    InvalidSecret,
    generate_secret,
    secret_key,
    signature,
    signed_headers,
)

BODY = b'{"type":"job.succeeded","timestamp":"2025-01-01T00:00:00Z","data":{"job_id":"x"}}'


def test_secret_is_whsec_and_base64_of_enough_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_") :])) == 32
    assert generate_secret() != secret
    with pytest.raises(ValueError):
        generate_secret(16)


def test_the_reference_library_verifies_our_headers() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, "3f8a7c1e-0000-4000-8000-000000000001", datetime.now(UTC), BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "job.succeeded",
        "timestamp": "2025-01-01T00:00:00Z",
        "data": {"job_id": "x"},
    }


@pytest.mark.parametrize("change", ["body", "id", "timestamp", "secret"])
def test_the_reference_library_rejects_anything_tampered(change: str) -> None:
    secret = generate_secret()
    now = datetime.now(UTC)
    headers = signed_headers(secret, "msg-1", now, BODY)
    body = BODY
    if change == "body":
        body = BODY.replace(b"succeeded", b"failed")
    elif change == "id":
        headers["webhook-id"] = "msg-2"
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(int(now.timestamp()) - 1)
    else:
        secret = generate_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_known_vector_from_the_specification() -> None:
    # The example used by the Standard Webhooks reference libraries' own tests.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize("bad", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_***"])
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSecret):
        secret_key(bad)
