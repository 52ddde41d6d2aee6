"""The one event envelope: CloudEvents 1.0 in Kafka *binary* mode.

The CloudEvents attributes travel as Kafka headers (``ce_id``, ``ce_source``, ``ce_type``,
``ce_specversion``, ``ce_time``, ``ce_subject`` and the ``ce_organizationid`` extension), the record
value is the JSON payload defined by a pydantic model in :mod:`shared.contracts`, and W3C trace context
rides along as ``traceparent``/``tracestate`` headers. See
https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts import topics

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
P = TypeVar("P", bound=BaseModel)


class MalformedEvent(ValueError):
    """An event that can never be processed; it goes to the dead-letter topic with this reason."""


class UnverifiedRecord(MalformedEvent):
    """A record of a topic whose writers sign (the agents' metrics and output, shared.record_signing)
    that is unsigned, signed by an unknown or decommissioned node, with a signature that does not verify,
    or that names another node than its signer's. Dead-lettered, never applied."""


class UnexpectedSource(MalformedEvent):
    """A well-formed event whose ``source`` is not a producer allowed on its topic
    (:data:`shared.contracts.topics.ACCESS`): a misrouted or impersonating producer. Dead-lettered, never
    applied. Without broker ACLs this is no security boundary (``source`` is whatever the writer set);
    with them it catches a principal that may write the topic but sends another's events."""


@dataclass(frozen=True)
class Envelope(Generic[P]):
    type: str
    source: str
    data: P
    subject: str | None = None
    organization_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def headers(self, trace_carrier: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
        out = {
            "ce_specversion": SPECVERSION,
            "ce_id": str(self.id),
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_time": self.time.isoformat().replace("+00:00", "Z"),
            "content-type": CONTENT_TYPE,
        }
        if self.subject:
            out["ce_subject"] = self.subject
        if self.organization_id:
            out["ce_organizationid"] = self.organization_id
        out.update(trace_carrier or {})
        return [(k, v.encode()) for k, v in out.items()]

    def value(self) -> bytes:
        return self.data.model_dump_json().encode()


def header_map(headers: Any) -> dict[str, str]:
    """Kafka headers (list of pairs, bytes or str values, or a mapping) as a str->str dict."""
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return {
        str(k).lower(): (v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v))
        for k, v in items
    }


def decode(headers: Any, value: bytes | None, models: dict[str, type[BaseModel]]) -> Envelope[BaseModel]:
    """Parse one Kafka record into an envelope; raises :class:`MalformedEvent` with a precise reason."""
    h = header_map(headers)
    missing = [a for a in ("ce_id", "ce_source", "ce_type", "ce_specversion") if not h.get(a)]
    if missing:
        raise MalformedEvent(f"missing CloudEvents headers: {', '.join(missing)}")
    if h["ce_specversion"] != SPECVERSION:
        raise MalformedEvent(f"unsupported specversion {h['ce_specversion']!r}")
    try:
        event_id = uuid.UUID(h["ce_id"])
    except ValueError as exc:
        raise MalformedEvent(f"ce_id is not a UUID: {h['ce_id']!r}") from exc
    model = models.get(h["ce_type"])
    if model is None:
        raise MalformedEvent(f"unknown event type {h['ce_type']!r}")
    try:
        data = model.model_validate_json(value or b"")
    except ValidationError as exc:
        raise MalformedEvent(f"payload does not match {model.__name__}: {exc.errors()[:3]}") from exc
    try:
        when = datetime.fromisoformat(h["ce_time"]) if h.get("ce_time") else datetime.now(UTC)
    except ValueError as exc:
        raise MalformedEvent(f"ce_time is not RFC 3339: {h['ce_time']!r}") from exc
    return Envelope(
        type=h["ce_type"],
        source=h["ce_source"],
        data=data,
        subject=h.get("ce_subject"),
        organization_id=h.get("ce_organizationid"),
        id=event_id,
        time=when,
    )


def check_source(envelope: Envelope[P], topic: str) -> Envelope[P]:
    """``envelope`` unchanged when its ``source`` may be on ``topic``; else :class:`UnexpectedSource`."""
    if not topics.source_allowed(topic, envelope.source):
        allowed = ", ".join(f"{topics.SOURCE_PREFIX}{p}" for p in topics.ACCESS[topic].producers)
        raise UnexpectedSource(
            f"source {envelope.source!r} may not publish {envelope.type!r} on {topic} (allowed: {allowed})"
        )
    return envelope
