"""Server-Sent Events relayed from a gRPC server stream: what ``GET /v1/events`` (notification's
``StreamEvents``) and ``GET /v1/jobs/{job_id}:watch`` (the scheduler's ``WatchJob``) share.

The first gRPC message is awaited before the response starts (:func:`open_stream`), so a request the
service refuses is an ordinary problem response rather than a stream that ends at once. After that,
:func:`relay` streams until the service ends the call, the client goes away, or the caller's key stops
authenticating (checked every :data:`REAUTH_SECONDS`).

SSE framing is a few lines here rather than a library: the frames are relayed, not produced, and what a
library would add (its own ping timer, its own shutdown hooks) would duplicate or fight the services' and
the runtime's.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from fastapi.responses import StreamingResponse

from services.gateway.adapters.downstream import Downstream
from shared.errors import DomainError

log = logging.getLogger("gpufleet.gateway.sse")

MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
# How often an open stream re-checks the caller's key with identity: a revoked or expired key's stream
# ends within about this long (the services check on their own as well).
REAUTH_SECONDS = 5.0
# Messages read ahead from the service while the client is slow (back-pressure beyond this).
READ_AHEAD = 64
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
}

M = TypeVar("M")


class EventStreamResponse(StreamingResponse):
    media_type = MEDIA_TYPE


def sse_event(cursor: str | None, event_type: str, data: str) -> bytes:
    """One SSE frame (no ``id:`` line when ``cursor`` is None). ``data`` is one line of JSON; any line
    break in it still becomes its own ``data:`` line (the SSE rule), so no value can end a frame early or
    forge a field."""
    lines = [] if cursor is None else [f"id: {_one_line(cursor)}"]
    lines.append(f"event: {_one_line(event_type)}")
    lines += [f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def caller_key(metadata: tuple[tuple[str, str], ...]) -> str:
    """The API key in a caller's gRPC metadata (``authorization: Bearer <key>``), to re-check it."""
    for name, value in metadata:
        if name == "authorization":
            return value.partition(" ")[2]
    return ""


async def open_stream(call: Any, closed: str) -> Any:
    """The first message of a server-streaming ``call``. A refusal raises its AioRpcError (a problem
    response, since the HTTP response has not started); a stream that closes before its first message is
    UNAVAILABLE with ``closed`` as the detail. The call is cancelled whenever this raises."""
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF:
        call.cancel()
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), closed
        )
    return first


async def relay(
    call: Any,
    first: bytes,
    render: Callable[[M], bytes],
    down: Downstream,
    api_key: str,
    *,
    heartbeat_seconds: float | None = None,
    name: str = "stream",
) -> AsyncIterator[bytes]:
    """The SSE body: ``first`` (the first message, already rendered), then every message of ``call``
    rendered as it arrives, re-checking the key every :data:`REAUTH_SECONDS` (also while nothing
    arrives). With ``heartbeat_seconds``, a :data:`HEARTBEAT` comment follows that long without a frame
    (for a service that sends no keep-alives of its own). Ends when the call does (normally or with an
    error), and cancels the gRPC call however it ends."""
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[M | None] = asyncio.Queue(READ_AHEAD)

    async def read() -> None:
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                await messages.put(message)
        except grpc.aio.AioRpcError as exc:
            log.info("%s ended by the service", name, extra={"grpc_status": exc.code().name})
        finally:
            await messages.put(None)

    reader = asyncio.create_task(read())
    try:
        yield first
        recheck_at = loop.time() + REAUTH_SECONDS
        beat_at = loop.time() + heartbeat_seconds if heartbeat_seconds else math.inf
        while True:
            try:
                message = await asyncio.wait_for(
                    messages.get(), max(min(recheck_at, beat_at) - loop.time(), 0)
                )
            except TimeoutError:
                pass
            else:
                if message is None:
                    return
                yield render(message)
                if heartbeat_seconds:
                    beat_at = loop.time() + heartbeat_seconds
            if heartbeat_seconds and loop.time() >= beat_at:
                yield HEARTBEAT
                beat_at = loop.time() + heartbeat_seconds
            if loop.time() >= recheck_at:
                try:
                    await down.authenticator.authenticate(api_key)
                except DomainError as exc:  # revoked, expired, or identity cannot say: end it
                    log.info("%s closed: the key no longer authenticates", name, extra={"error": exc.code})
                    return
                recheck_at = loop.time() + REAUTH_SECONDS
    finally:
        reader.cancel()
        call.cancel()
