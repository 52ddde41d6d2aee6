"""The tenant's live event stream (``GET /v1/events``), resumed after a dropped connection.

Frames are parsed by ``httpx-sse`` (the SSE rules: multi-line ``data``, ``id`` carried over, comments
such as ``: heartbeat`` skipped, an unfinished frame of a dropped connection discarded). When the
connection drops, or the server ends the stream, the reader reconnects with ``Last-Event-ID`` set to
the last id it saw, so nothing is missed or seen twice; it gives up (exit 75) after
``MAX_RECONNECTS`` failed attempts in a row. A refusal (401, 403, 404, 422) is not retried.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from services.cli import exits
from services.cli.client import Api

MAX_RECONNECTS = 8
FIRST_DELAY, MAX_DELAY = 0.5, 10.0


@dataclass(frozen=True)
class Event:
    """One frame: ``cursor`` is the SSE id to resume after, ``cloudevent`` the parsed ``data``."""

    cursor: str | None
    type: str
    cloudevent: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        value = self.cloudevent.get("data")
        return value if isinstance(value, dict) else {}

    def as_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "type": self.type, "event": self.cloudevent}


@dataclass(frozen=True)
class Opened:
    """Yielded each time a connection is (re)established, before its first event: a follower reads
    the current state then, so an event that happened before the stream opened is not missed."""

    resumed: bool


def _retryable(exc: exits.CliError) -> bool:
    return exc.code in (exits.TEMPORARY, exits.UNAVAILABLE) or (
        isinstance(exc, exits.ApiError) and exc.status >= 500
    )


async def stream(
    api: Api,
    *,
    job_id: str | None = None,
    types: Sequence[str] = (),
    last_event_id: str | None = None,
    from_start: bool = False,
    max_reconnects: int = MAX_RECONNECTS,
) -> AsyncIterator[Event | Opened]:
    cursor = last_event_id
    failures = 0
    base = delay = FIRST_DELAY
    opened_once = False
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if cursor:
            headers["Last-Event-ID"] = cursor
        params = {
            "job_id": job_id,
            "types": ",".join(types) if types else None,
            "from": "start" if from_start and not cursor else None,
        }
        try:
            async with api.stream("/events", params=params, headers=headers) as response:
                source = EventSource(response)
                yield Opened(resumed=opened_once)
                opened_once = True
                failures = 0
                async for frame in source.aiter_sse():
                    if frame.retry:  # the server's reconnection time (SSE ``retry:``)
                        base = min(frame.retry / 1000, MAX_DELAY)
                    delay = base  # the connection works: a later drop starts the backoff over
                    if frame.id:
                        cursor = frame.id
                    if not frame.data:
                        continue
                    yield Event(cursor=frame.id or cursor, type=frame.event, cloudevent=_parse(frame.data))
        except exits.CliError as exc:
            if not _retryable(exc):
                raise
            last_error: str = exc.message
        except SSEError as exc:
            raise exits.CliError(
                f"GET /v1/events did not answer an event stream: {exc}", exits.SOFTWARE
            ) from exc
        except httpx.TransportError as exc:
            last_error = f"connection lost ({type(exc).__name__})"
        else:
            last_error = "the server ended the stream"
        failures += 1
        if failures > max_reconnects:
            raise exits.CliError(
                f"the event stream could not be resumed after {max_reconnects} attempts: {last_error}",
                exits.TEMPORARY,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


def _parse(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError:
        return {"data": data}
    return value if isinstance(value, dict) else {"data": value}
