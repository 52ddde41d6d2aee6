"""The tenant's event log and its stream, pure: events as CloudEvents in structured mode, the stream
cursor, and which event types a caller may read.

Every job and cost event of an organization is kept, in the order it was stored, under a number that
grows per organization (``seq``). The stream's cursor (the SSE ``id``) is that number; it is opaque to
clients (docs/events.md), who only hand it back as ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared import scopes
from shared.contracts import costs, jobs
from shared.errors import InvalidArgument, PermissionDenied
from shared.events import CONTENT_TYPE, SPECVERSION

JOB_TYPES: tuple[str, ...] = tuple(jobs.EVENT_TYPES)
COST_TYPES: tuple[str, ...] = tuple(costs.EVENT_TYPES)
STREAM_TYPES: tuple[str, ...] = (*JOB_TYPES, *COST_TYPES)
MAX_STREAM_TYPES = 32
# The field a bad cursor is reported under (what the REST caller sent: Last-Event-ID / last_event_id).
CURSOR_FIELD = "last_event_id"
_CURSOR = re.compile(r"^[0-9]{1,19}$")
MAX_SEQ = 2**63 - 1  # BIGINT


def scope_of(event_type: str) -> str:
    """The API key scope that reading an event of this type needs."""
    return scopes.COSTS_READ if event_type in COST_TYPES else scopes.JOBS_READ


@dataclass(frozen=True)
class NewEvent:
    """An event to append to its organization's log."""

    organization_id: UUID
    event_id: UUID  # the CloudEvent id
    type: str
    job_id: UUID | None
    occurred_at: datetime
    cloudevent: str  # structured-mode JSON, one line
    project_id: UUID | None = None  # the job's project, as the event carried it (None: none)


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    event_id: UUID
    type: str
    job_id: UUID | None
    cloudevent: str

    @property
    def cursor(self) -> str:
        return encode_cursor(self.seq)


def _rfc3339(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cloudevent_json(
    *,
    event_id: UUID,
    source: str,
    type: str,
    time: datetime,
    subject: str | None,
    organization_id: UUID,
    data: Mapping[str, Any],
) -> str:
    """The CloudEvent in structured mode: the attributes the topic carries as ``ce_*`` headers (the
    ``organizationid`` extension included), ``datacontenttype`` and the payload as ``data``."""
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": str(event_id),
        "source": source,
        "type": type,
        "time": _rfc3339(time),
    }
    if subject:
        event["subject"] = subject
    event["datacontenttype"] = CONTENT_TYPE
    event["organizationid"] = str(organization_id)
    event["data"] = data
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def encode_cursor(seq: int) -> str:
    return str(seq)


def decode_cursor(cursor: str) -> int:
    """The position a cursor names; :class:`InvalidArgument` when it is not one the stream sends."""
    if not _CURSOR.match(cursor) or int(cursor) > MAX_SEQ:
        raise InvalidArgument(
            "last_event_id is not an id this stream sent (expected the id of an event frame)",
            field=CURSOR_FIELD,
        )
    return int(cursor)


def check_position(after: int, head: int) -> None:
    """A cursor beyond the organization's newest event was never sent to it."""
    if after > head:
        raise InvalidArgument(
            "last_event_id is ahead of this organization's event stream", field=CURSOR_FIELD
        )


def readable_types(granted: Iterable[str], requested: Iterable[str] = ()) -> tuple[str, ...]:
    """The event types a stream sends: ``requested`` (all when empty), limited to those the caller's
    scopes (``granted``, as :func:`shared.scopes.granted` expands them) may read.

    An unknown type is the caller's error. A type asked for by name that the key may not read is
    refused (the key must not silently get less than it asked for); without names, a key gets the kinds
    it may read, and a key that may read neither kind is refused."""
    have = frozenset(granted)
    wanted = list(dict.fromkeys(requested))
    if len(wanted) > MAX_STREAM_TYPES:
        raise InvalidArgument(f"at most {MAX_STREAM_TYPES} types", field="types")
    for t in wanted:
        if t not in STREAM_TYPES:
            raise InvalidArgument(
                f"unknown event type {t!r}; expected some of {', '.join(STREAM_TYPES)}", field="types"
            )
    if wanted:
        for t in wanted:
            if scope_of(t) not in have:
                needed = scope_of(t)
                raise PermissionDenied(
                    f"this API key lacks the {needed} scope, which {t} events need",
                    field="scopes",
                    required_scope=needed,
                )
        return tuple(t for t in STREAM_TYPES if t in wanted)
    types = tuple(t for t in STREAM_TYPES if scope_of(t) in have)
    if not types:
        raise PermissionDenied(
            f"this API key has neither {scopes.JOBS_READ} nor {scopes.COSTS_READ}, which the event stream needs",
            field="scopes",
            required_scope=scopes.JOBS_READ,
        )
    return types
