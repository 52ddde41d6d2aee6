"""The CloudEvents envelope: binary-mode headers and precise rejection of malformed records."""

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from shared.events import Envelope, MalformedEvent, decode, header_map


class Payload(BaseModel):
    n: int


MODELS = {"test.thing.happened": Payload}


def test_round_trip_keeps_every_attribute():
    env = Envelope(
        type="test.thing.happened",
        source="gpufleet/test",
        data=Payload(n=3),
        subject="s-1",
        organization_id=str(uuid.uuid4()),
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    headers = env.headers({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})
    back = decode(headers, env.value(), MODELS)
    assert (back.id, back.type, back.source, back.subject, back.organization_id, back.time) == (
        env.id,
        env.type,
        env.source,
        env.subject,
        env.organization_id,
        env.time,
    )
    assert back.data == Payload(n=3)
    h = header_map(headers)
    assert h["ce_specversion"] == "1.0" and h["content-type"] == "application/json"
    assert h["ce_time"] == "2026-01-02T03:04:05Z" and h["traceparent"].startswith("00-")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("ce_id"), "missing CloudEvents headers: ce_id"),
        (lambda h: h.update(ce_specversion="0.3"), "unsupported specversion"),
        (lambda h: h.update(ce_id="nope"), "ce_id is not a UUID"),
        (lambda h: h.update(ce_type="test.other"), "unknown event type"),
        (lambda h: h.update(ce_time="yesterday"), "ce_time is not RFC 3339"),
    ],
)
def test_malformed_headers_are_rejected_with_a_reason(mutate, reason):
    env = Envelope(type="test.thing.happened", source="s", data=Payload(n=1))
    h = header_map(env.headers())
    mutate(h)
    with pytest.raises(MalformedEvent, match=reason):
        decode(h, env.value(), MODELS)


def test_payload_that_does_not_match_the_model_is_rejected():
    env = Envelope(type="test.thing.happened", source="s", data=Payload(n=1))
    with pytest.raises(MalformedEvent, match="payload does not match Payload"):
        decode(env.headers(), b'{"n": "many"}', MODELS)
