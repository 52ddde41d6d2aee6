"""GET /v1/events: the organization's job and cost events as Server-Sent Events (notification's
``StreamEvents``, relayed frame by frame). The wire format is in docs/events.md.

The gateway keeps no state: the cursor (the SSE ``id``) is notification's per-organization log number,
so a client resumes with ``Last-Event-ID`` through any gateway replica, before or after a restart.

Opening, relaying and closing the stream (a refusal is a problem response; the stream ends with
notification's, with the client, or when the caller's key stops authenticating) is
:mod:`services.gateway.entrypoints.sse`, shared with ``GET /v1/jobs/{job_id}:watch``. Heartbeats come
from notification's timer as ``heartbeat`` messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from gpufleet.v1 import notification_pb2
from pydantic import BaseModel, Field

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints import sse
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.routes import problem_responses

router = APIRouter(prefix="/v1", tags=["events"])

MAX_CURSOR_LENGTH = 32
MAX_TYPES_LENGTH = 2048


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


def frame(message: notification_pb2.StreamedEvent) -> bytes:
    if message.heartbeat:
        return sse.HEARTBEAT
    return sse.sse_event(message.cursor, message.type, message.cloudevent_json)


def split_types(types: str | None) -> list[str]:
    """``gpufleet.job.started, gpufleet.job.succeeded`` -> the names, blanks dropped, order kept."""
    return [t.strip() for t in (types or "").split(",") if t.strip()]


def relay(
    call: Any, first: notification_pb2.StreamedEvent, down: Downstream, api_key: str
) -> AsyncIterator[bytes]:
    """The SSE body: ``first``, then every message of ``call`` as it arrives (see :func:`sse.relay`)."""
    return sse.relay(call, frame(first), frame, down, api_key, name="event stream")


@router.get(
    "/events",
    response_class=sse.EventStreamResponse,
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
) -> sse.EventStreamResponse:
    request = notification_pb2.StreamEventsRequest(
        after=(last_event_id_header or last_event_id or "").strip(),
        job_id=job_id or "",
        types=split_types(types),
        from_start=start == "start",
    )
    # No deadline: the stream lives as long as the client stays (the default call timeout would end it).
    call = down.notification.StreamEvents(request, metadata=caller.metadata)
    first = await sse.open_stream(call, "the event stream closed")
    return sse.EventStreamResponse(
        relay(call, first, down, sse.caller_key(caller.metadata)), headers=sse.STREAM_HEADERS
    )
