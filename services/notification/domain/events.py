"""User-facing event names and the webhook body, pure.

Tenants see the job and cost topics' event types without the ``gpufleet.`` prefix (``job.succeeded``,
``cost.recorded``); a webhook subscribes to a subset of them, the empty set meaning every *job* event
(what it meant before cost events could be subscribed to: a webhook created without a list does not
start receiving bodies of another shape). The body carries the CloudEvent id as ``id``, the same value
as the ``webhook-id`` header of every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.contracts.limits import MAX_WEBHOOK_EVENTS, WEBHOOK_EVENT_NAMES
from shared.errors import InvalidArgument

INTERNAL_PREFIX = "gpufleet."
EVENT_NAMES: tuple[str, ...] = WEBHOOK_EVENT_NAMES
# Every body is JSON (webhook_body); sent as the request's content-type.
CONTENT_TYPE = "application/json"


def public_name(event_type: str) -> str | None:
    """``gpufleet.job.succeeded`` -> ``job.succeeded``; None for a type tenants are not offered."""
    if not event_type.startswith(INTERNAL_PREFIX):
        return None
    name = event_type[len(INTERNAL_PREFIX) :]
    return name if name in EVENT_NAMES else None


def event_filter(names: Iterable[str]) -> tuple[str, ...]:
    """A webhook's subscription, checked and without duplicates (in the canonical order)."""
    names = list(names)
    if len(names) > MAX_WEBHOOK_EVENTS:
        raise InvalidArgument(f"at most {MAX_WEBHOOK_EVENTS} events", field="events")
    wanted = set()
    for name in names:
        if name not in EVENT_NAMES:
            raise InvalidArgument(
                f"unknown event {name!r}; expected some of {', '.join(EVENT_NAMES)}", field="events"
            )
        wanted.add(name)
    return tuple(n for n in EVENT_NAMES if n in wanted)


JOB_PREFIX = "job."


def subscribes_to(events: Iterable[str], name: str) -> bool:
    subscribed = tuple(events)
    return name in subscribed or (not subscribed and name.startswith(JOB_PREFIX))


def _rfc3339(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(event_id: UUID, name: str, at: datetime, data: Mapping[str, Any]) -> bytes:
    """The exact bytes every target of one event receives (and that the signature covers)."""
    body = {"id": str(event_id), "type": name, "timestamp": _rfc3339(at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
