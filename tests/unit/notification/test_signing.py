"""Our Standard Webhooks headers (signed by the standardwebhooks library behind the Signer port),
checked by that library's own ``verify``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notification.adapters.signing import StandardWebhooksSigner
from services.notification.domain.signing import InvalidSecret, check_secret, generate_secret

BODY = b'{"type":"job.succeeded","timestamp":"2025-01-01T00:00:00Z","data":{"job_id":"x","name":"r\xc3\xa9sum\xc3\xa9"}}'
SIGNER = StandardWebhooksSigner()


def test_secret_is_whsec_and_base64_of_enough_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and check_secret(secret) == secret
    assert len(base64.b64decode(secret[len("whsec_") :])) == 32
    assert generate_secret() != secret
    with pytest.raises(ValueError):
        generate_secret(16)


def test_the_library_verifies_our_headers() -> None:
    secret = generate_secret()
    headers = SIGNER.headers(secret, "3f8a7c1e-0000-4000-8000-000000000001", datetime.now(UTC), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "3f8a7c1e-0000-4000-8000-000000000001"
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(BODY, headers)
    assert payload["type"] == "job.succeeded" and payload["data"]["name"] == "résumé"


def test_the_timestamp_header_is_the_signed_one_whatever_the_clocks_zone() -> None:
    secret = generate_secret()
    at = datetime.now(timezone(timedelta(hours=-5)))  # a non-UTC aware clock must not shift the time
    headers = SIGNER.headers(secret, "msg-1", at, BODY)
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize("change", ["body", "id", "timestamp", "secret"])
def test_the_library_rejects_anything_tampered(change: str) -> None:
    secret = generate_secret()
    now = datetime.now(UTC)
    headers = SIGNER.headers(secret, "msg-1", now, BODY)
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
    headers = SIGNER.headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.fromtimestamp(1614265330, UTC),
        b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


@pytest.mark.parametrize("bad", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_***"])
def test_malformed_secrets_are_refused_before_the_library_sees_them(bad: str) -> None:
    with pytest.raises(InvalidSecret):
        check_secret(bad)
    with pytest.raises(InvalidSecret):
        SIGNER.headers(bad, "msg-1", datetime.now(UTC), BODY)
