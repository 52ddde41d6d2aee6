"""The tenant's live event stream (``GET /v1/events``), resumed after a dropped connection.

Frames are parsed by ``httpx-sse`` (the SSE rules: multi-line ``data``, ``id`` carried over, comments
such as ``: heartbeat`` skipped, an unfinished frame of a dropped connection discarded). When the
connection drops, or the server ends the stream, the reader reconnects with ``Last-Event-ID`` set to
the last id it saw, so nothing is missed or seen twice; it gives up (exit 75) after
``MAX_RECONNECTS`` failed attempts in a row. A refusal (401, 403, 404, 422) is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from services.cli import exits
from services.cli.client import Api

MAX_RECONNECTS = 8
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})  # a job's final statuses
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


class _Resumer:
    """A stream's reconnections: the backoff between attempts (reset by a frame, or set by the server's
    ``retry:``), and giving up after ``max_reconnects`` failed attempts in a row."""

    def __init__(self, what: str, max_reconnects: int) -> None:
        self.what, self.max_reconnects = what, max_reconnects
        self.failures = 0
        self.base = self.delay = FIRST_DELAY
        self.done = False  # set by a reader that ends the stream itself: no reconnection then

    def frame(self, retry_ms: int | None) -> None:
        if retry_ms:  # the server's reconnection time (SSE ``retry:``)
            self.base = min(retry_ms / 1000, MAX_DELAY)
        self.delay = self.base  # the connection works: a later drop starts the backoff over

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        """One connection: a drop, a retryable refusal or the server's end are waited out (or given up
        on); anything else is raised."""
        try:
            yield
        except exits.CliError as exc:
            if not _retryable(exc):
                raise
            last_error: str = exc.message
        except SSEError as exc:
            raise exits.CliError(
                f"{self.what} did not answer an event stream: {exc}", exits.SOFTWARE
            ) from exc
        except httpx.TransportError as exc:
            last_error = f"connection lost ({type(exc).__name__})"
        else:
            if self.done:
                return
            last_error = "the server ended the stream"
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise exits.CliError(
                f"the stream of {self.what} could not be resumed after {self.max_reconnects} attempts: "
                f"{last_error}",
                exits.TEMPORARY,
            )
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, MAX_DELAY)


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
    resumer = _Resumer("GET /v1/events", max_reconnects)
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
        async with resumer.attempt(), api.stream("/events", params=params, headers=headers) as response:
            source = EventSource(response)
            yield Opened(resumed=opened_once)
            opened_once = True
            resumer.failures = 0
            async for frame in source.aiter_sse():
                resumer.frame(frame.retry)
                if frame.id:
                    cursor = frame.id
                if not frame.data:
                    continue
                yield Event(cursor=frame.id or cursor, type=frame.event, cloudevent=_parse(frame.data))


async def watch_job(
    api: Api, job_id: str, *, max_reconnects: int = MAX_RECONNECTS
) -> AsyncIterator[dict[str, Any]]:
    """One job's states from ``GET /v1/jobs/{id}:watch``: its current state at each (re)connection, then
    each change, as the ``GET /v1/jobs/{id}`` body. The server ends the stream after the final status;
    a dropped connection (or an end before it) is resumed the way :func:`stream` resumes: the first
    frame after a reconnection is the state then, so no change is lost (consecutive repeats may come)."""
    resumer = _Resumer(f"GET /v1/jobs/{job_id}:watch", max_reconnects)
    while True:
        async with (
            resumer.attempt(),
            api.stream(
                f"/jobs/{job_id}:watch", headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            ) as response,
        ):
            resumer.failures = 0
            async for frame in EventSource(response).aiter_sse():
                resumer.frame(frame.retry)
                if frame.event != "job" or not frame.data:
                    continue
                job = _parse(frame.data)
                yield job
                if job.get("status") in TERMINAL:
                    resumer.done = True
                    return


def _parse(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError:
        return {"data": data}
    return value if isinstance(value, dict) else {"data": value}
