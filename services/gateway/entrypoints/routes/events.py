"""GET /v1/events: the organization's job and cost events as Server-Sent Events (notification's
``StreamEvents``, relayed frame by frame). The wire format is in docs/events.md.

The gateway keeps no state: the cursor (the SSE ``id``) is notification's per-organization log number,
so a client resumes with ``Last-Event-ID`` through any gateway replica, before or after a restart.

The first gRPC message is awaited before the response starts, so a request notification refuses (a bad
cursor, a key without the scopes) is an ordinary problem response rather than a stream that ends at
once. After that, the stream ends when notification ends it, when the client goes away, or when the
caller's key stops authenticating (checked every :data:`REAUTH_SECONDS`).

SSE framing is a few lines here rather than a library: the frames are relayed, not produced (heartbeats
come from notification's timer as ``heartbeat`` messages), and what a library would add (its own ping
timer, its own shutdown hooks) would duplicate or fight notification's and the runtime's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from gpufleet.v1 import notification_pb2
from pydantic import BaseModel, Field

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.routes import problem_responses
from shared.errors import DomainError

log = logging.getLogger("gpufleet.gateway.events")

router = APIRouter(prefix="/v1", tags=["events"])

MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
# How often an open stream re-checks the caller's key with identity: a revoked or expired key's stream
# ends within about this long (notification checks on its own as well).
REAUTH_SECONDS = 5.0
MAX_CURSOR_LENGTH = 32
MAX_TYPES_LENGTH = 2048
# Frames read ahead from notification while the client is slow (back-pressure beyond this).
READ_AHEAD = 64
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
}


class EventStreamResponse(StreamingResponse):
    media_type = MEDIA_TYPE


class EventFrame(BaseModel):
    """One event frame of the stream (``id:``, ``event:``, ``data:`` lines, then a blank line); between
    frames, ``: heartbeat`` comment lines keep the connection open."""

    id: str = Field(description="Opaque cursor, increasing per organization; send it back as Last-Event-ID.")
    event: str = Field(
        description="The CloudEvent type, e.g. gpufleet.job.succeeded or gpufleet.cost.recorded."
    )
    data: str = Field(
        description="The CloudEvent in structured mode as one line of JSON: specversion, id, source, type, "
        "time, subject, datacontenttype, organizationid, data. Its id is the Kafka ce_id and the webhook-id."
    )


def sse_event(cursor: str, event_type: str, data: str) -> bytes:
    """One SSE frame. ``data`` is one line of JSON; any line break in it still becomes its own ``data:``
    line (the SSE rule), so no value can end a frame early or forge a field."""
    lines = [f"id: {_one_line(cursor)}", f"event: {_one_line(event_type)}"]
    lines += [f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def frame(message: notification_pb2.StreamedEvent) -> bytes:
    if message.heartbeat:
        return HEARTBEAT
    return sse_event(message.cursor, message.type, message.cloudevent_json)


def split_types(types: str | None) -> list[str]:
    """``gpufleet.job.started, gpufleet.job.succeeded`` -> the names, blanks dropped, order kept."""
    return [t.strip() for t in (types or "").split(",") if t.strip()]


def _key(metadata: tuple[tuple[str, str], ...]) -> str:
    for name, value in metadata:
        if name == "authorization":
            return value.partition(" ")[2]
    return ""


async def relay(
    call: Any, first: notification_pb2.StreamedEvent, down: Downstream, api_key: str
) -> AsyncIterator[bytes]:
    """The SSE body: ``first``, then every message of ``call`` as it arrives, re-checking the key every
    :data:`REAUTH_SECONDS` (also while nothing arrives). Cancels the gRPC call however it ends."""
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[notification_pb2.StreamedEvent | None] = asyncio.Queue(READ_AHEAD)

    async def read() -> None:
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                await messages.put(message)
        except grpc.aio.AioRpcError as exc:
            log.info("event stream ended by notification", extra={"grpc_status": exc.code().name})
        finally:
            await messages.put(None)

    reader = asyncio.create_task(read())
    try:
        yield frame(first)
        recheck_at = loop.time() + REAUTH_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(messages.get(), max(recheck_at - loop.time(), 0))
            except TimeoutError:
                pass
            else:
                if message is None:
                    return
                yield frame(message)
            if loop.time() >= recheck_at:
                try:
                    await down.authenticator.authenticate(api_key)
                except DomainError as exc:  # revoked, expired, or identity cannot say: end it
                    log.info(
                        "event stream closed: the key no longer authenticates", extra={"error": exc.code}
                    )
                    return
                recheck_at = loop.time() + REAUTH_SECONDS
    finally:
        reader.cancel()
        call.cancel()


@router.get(
    "/events",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "Server-Sent Events: the organization's job events (scope jobs:read) and cost "
            "events (scope costs:read), oldest first; `: heartbeat` comments while idle. Resume with "
            "`Last-Event-ID`. A project-bound API key gets only its project's events (the others are "
            "skipped; ids stay the organization's). See docs/events.md.",
            "model": EventFrame,
        },
        **problem_responses(422),
    },
    summary="Live stream of the organization's job and cost events (SSE, resumable)",
)
async def stream_events(
    caller: CallerDep,
    down: DownstreamDep,
    job_id: Annotated[str | None, Query(description="Only this job's events.")] = None,
    types: Annotated[
        str | None,
        Query(
            max_length=MAX_TYPES_LENGTH,
            description="Comma-separated CloudEvent types, e.g. `gpufleet.job.started,gpufleet.job.succeeded`.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="The id of the last event received, for clients that cannot set `Last-Event-ID`.",
        ),
    ] = None,
    start: Annotated[
        Literal["start"] | None,
        Query(
            alias="from",
            description="`start`: without a Last-Event-ID, replay the retained log from the oldest kept "
            "event (default: new events only).",
        ),
    ] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=MAX_CURSOR_LENGTH,
            description="Resume after this event (what EventSource sends on reconnect); wins over the query.",
        ),
    ] = None,
) -> EventStreamResponse:
    request = notification_pb2.StreamEventsRequest(
        after=(last_event_id_header or last_event_id or "").strip(),
        job_id=job_id or "",
        types=split_types(types),
        from_start=start == "start",
    )
    # No deadline: the stream lives as long as the client stays (the default call timeout would end it).
    call = down.notification.StreamEvents(request, metadata=caller.metadata)
    try:
        first = await call.read()  # raises AioRpcError for a refused request: a problem response
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "the event stream closed"
        )
    return EventStreamResponse(relay(call, first, down, _key(caller.metadata)), headers=STREAM_HEADERS)
