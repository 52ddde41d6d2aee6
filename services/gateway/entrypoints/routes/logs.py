"""/v1/jobs/{job_id}/logs (monitoring's JobOutputService): a job's whole output, read or followed.

Monitoring learns of a job from the job topic, a moment after the scheduler has it. So when monitoring
does not know the job, the scheduler is asked: a job it has (for this caller's organization) has no
output yet (200, empty, not complete); one it does not have is a 404, as another organization's is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from gpufleet.v1 import output_pb2, scheduler_pb2
from pydantic import RootModel

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints.auth import Caller, CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.routes import problem_responses
from shared.wire import parse_ts

log = logging.getLogger("gpufleet.gateway.logs")

router = APIRouter(prefix="/v1", tags=["jobs"])

MEDIA_TYPE = "text/plain; charset=utf-8"
PAGE_BYTES = 1024 * 1024
UNKNOWN_RETRY_SECONDS = 1.0  # following a job monitoring has not heard of yet: ask again this often
ENDED_ROUNDS = 10  # ... and after this many rounds, a job the scheduler says ended long ago ends it:
ENDED_GRACE_SECONDS = 60.0  # monitoring may lag the job topic that long (a rebalance, a restart)
MAX_UNKNOWN_ROUNDS = 600  # and whatever the job does, a follow of output never heard of ends after this
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "timed_out")
RECONNECTS = 30  # a follow whose stream broke (monitoring restarting) is resumed this many times

_HEADERS = {
    "GpuFleet-Output-Complete": "true when the job's attempt ended and all its output is stored",
    "GpuFleet-Output-Truncated": "true when output beyond the limit was cut (head, marker line, tail)",
    "GpuFleet-Output-Size": "bytes stored (the marker line included)",
}


class JobOutputText(RootModel[str]):
    """The job's output as it printed it (UTF-8 expected, any bytes passed through), from ``offset``;
    past the limit, the head, one ``[gpufleet] N bytes of output cut here ...`` line, and the tail."""


_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The output from `offset` (stdout and stderr interleaved); with `follow=true`, "
        "streamed until the output is complete. See docs/job-output.md.",
        "model": JobOutputText,
        "headers": {
            name: {"description": text, "schema": {"type": "string"}} for name, text in _HEADERS.items()
        },
    }
}


def _headers(complete: bool, truncated: bool, size: int) -> dict[str, str]:
    return {
        "GpuFleet-Output-Complete": str(complete).lower(),
        "GpuFleet-Output-Truncated": str(truncated).lower(),
        "GpuFleet-Output-Size": str(size),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


@router.get(
    "/jobs/{job_id}/logs",
    response_class=PlainTextResponse,
    responses={**_OK, **problem_responses(404, 422)},
    summary="The job's output (follow=true streams it until the job's output is complete)",
)
async def job_logs(
    job_id: str,
    caller: CallerDep,
    down: DownstreamDep,
    offset: Annotated[int, Query(ge=0, description="Byte offset in the stored output.")] = 0,
    follow: Annotated[bool, Query(description="Stream new output until the output is complete.")] = False,
    attempt: Annotated[
        int | None, Query(ge=1, description="Which attempt (default: the latest; 1 is the first run).")
    ] = None,
) -> Response:
    jid = resource_id(job_id)
    if follow:
        return await _follow(down, caller, jid, offset, attempt)
    request = output_pb2.ReadOutputRequest(job_id=jid, offset=offset, limit=PAGE_BYTES, attempt=attempt)
    try:
        page = await down.output.ReadOutput(request, **caller.call)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        await _job_exists(down, caller, jid)
        return Response(b"", media_type=MEDIA_TYPE, headers=_headers(False, False, 0))
    headers = _headers(page.complete, page.truncated, page.size)
    if page.offset + len(page.data) >= page.size:
        return Response(page.data, media_type=MEDIA_TYPE, headers=headers)
    return StreamingResponse(_rest(down, caller, page, attempt), media_type=MEDIA_TYPE, headers=headers)


async def _job_exists(down: Downstream, caller: Caller, job_id: str) -> None:
    """Raises NOT_FOUND (a 404 problem) unless the scheduler has the job for this caller."""
    await down.jobs.GetJob(scheduler_pb2.GetJobRequest(id=job_id), **caller.call)


async def _rest(
    down: Downstream, caller: Caller, first: output_pb2.OutputPage, attempt: int | None
) -> AsyncIterator[bytes]:
    """The first page, then the following ones, of the same attempt, up to the size the first told."""
    yield first.data
    offset, end = first.offset + len(first.data), first.size
    while offset < end:
        page = await down.output.ReadOutput(
            output_pb2.ReadOutputRequest(
                job_id=first.job_id, attempt=first.attempt, offset=offset, limit=min(PAGE_BYTES, end - offset)
            ),
            **caller.call,
        )
        if not page.data:
            return
        yield page.data
        offset += len(page.data)


async def _follow(
    down: Downstream, caller: Caller, job_id: str, offset: int, attempt: int | None
) -> Response:
    request = output_pb2.FollowOutputRequest(job_id=job_id, offset=offset, attempt=attempt)
    call = down.output.FollowOutput(request, metadata=caller.metadata)
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        call.cancel()
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        await _job_exists(down, caller, job_id)
        return StreamingResponse(
            _unknown_yet(down, caller, request), media_type=MEDIA_TYPE, headers=_headers(False, False, 0)
        )
    if first is grpc.aio.EOF:
        return Response(b"", media_type=MEDIA_TYPE, headers=_headers(True, False, 0))
    headers = _headers(first.complete, first.truncated, first.size)
    return StreamingResponse(_stream(down, caller, call, first), media_type=MEDIA_TYPE, headers=headers)


async def _stream(
    down: Downstream, caller: Caller, call: Any, first: output_pb2.OutputPage
) -> AsyncIterator[bytes]:
    """Every page's data until monitoring ends the stream (the output is complete). A stream that
    breaks (monitoring restarting) is resumed from where it got to, pinned to the same attempt."""
    page, reconnects = first, 0
    try:
        while True:
            if page.data:
                yield page.data
            offset = page.offset + len(page.data)
            try:
                page = await call.read()
            except grpc.aio.AioRpcError as exc:
                if (
                    exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
                    or reconnects >= RECONNECTS
                ):
                    log.warning("job output stream ended early", extra={"grpc_status": exc.code().name})
                    return
                reconnects += 1
                await asyncio.sleep(1.0)
                call = down.output.FollowOutput(
                    output_pb2.FollowOutputRequest(job_id=first.job_id, attempt=first.attempt, offset=offset),
                    metadata=caller.metadata,
                )
                page = output_pb2.OutputPage(job_id=first.job_id, attempt=first.attempt, offset=offset)
                continue
            if page is grpc.aio.EOF:
                return
    finally:
        call.cancel()


def _ended_long_ago(job: scheduler_pb2.Job) -> bool:
    """Ended long enough ago that monitoring, had the job stored any output, would know it by now (a
    job the scheduler says ended but with no end time: treated as long ago)."""
    ended = parse_ts(job.finished_at, "finished_at") if job.finished_at else None
    return ended is None or (datetime.now(UTC) - ended).total_seconds() >= ENDED_GRACE_SECONDS


async def _unknown_yet(
    down: Downstream, caller: Caller, request: output_pb2.FollowOutputRequest
) -> AsyncIterator[bytes]:
    """Follow a job the scheduler has but monitoring has not heard of yet: ask until it has. A job
    that ended long enough ago for monitoring to have heard of it has no stored output (never started,
    or past retention): the empty stream ends. "Long enough" is counted from the job's end, not from
    the follow's start: monitoring learns of jobs from the job topic and can lag it by seconds (a
    consumer group rebalancing at start-up, a restart), and a short job followed from its submit would
    otherwise end its follower with nothing while its output was still on its way."""
    rounds = 0
    while True:
        await asyncio.sleep(UNKNOWN_RETRY_SECONDS)
        rounds += 1
        call = down.output.FollowOutput(request, metadata=caller.metadata)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                return
            if rounds >= MAX_UNKNOWN_ROUNDS:
                return
            if rounds >= ENDED_ROUNDS:
                job = await down.jobs.GetJob(scheduler_pb2.GetJobRequest(id=request.job_id), **caller.call)
                if job.status in TERMINAL_STATUSES and _ended_long_ago(job):
                    return
            continue
        if first is grpc.aio.EOF:
            call.cancel()
            return
        async for data in _stream(down, caller, call, first):
            yield data
        return
