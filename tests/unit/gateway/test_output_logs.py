"""GET /v1/jobs/{id}/logs over fake stubs: headers from monitoring's page, paging, a job monitoring has
not heard of yet, a 404 for a job the scheduler does not have for the caller, and a follow that
resumes where it got to when its stream breaks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from fastapi.responses import StreamingResponse
from gpufleet.v1 import common_pb2, output_pb2, scheduler_pb2

from services.gateway.entrypoints.auth import Caller
from services.gateway.entrypoints.routes import logs

JOB = str(uuid.uuid4())
CALLER = Caller(principal=common_pb2.Principal(), metadata=(("authorization", "k"),), timeout=5)


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


class FakeCall:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.cancelled = False

    async def read(self) -> Any:
        item = self.items.pop(0) if self.items else grpc.aio.EOF
        if isinstance(item, Exception):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeOutput:
    stored: bytes = b""
    complete: bool = True
    known: bool = True
    follows: list[list[Any]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    async def ReadOutput(self, request: output_pb2.ReadOutputRequest, **kw: Any) -> output_pb2.OutputPage:
        self.requests.append(request)
        if not self.known:
            raise rpc_error(grpc.StatusCode.NOT_FOUND)
        data = self.stored[request.offset : request.offset + (request.limit or 4)]
        return output_pb2.OutputPage(
            job_id=JOB,
            attempt=1,
            offset=request.offset,
            data=data,
            size=len(self.stored),
            complete=self.complete,
        )

    def FollowOutput(self, request: output_pb2.FollowOutputRequest, **kw: Any) -> FakeCall:
        self.requests.append(request)
        return FakeCall(self.follows.pop(0))


@dataclass
class FakeJobs:
    exists: bool = True

    async def GetJob(self, request: scheduler_pb2.GetJobRequest, **kw: Any) -> scheduler_pb2.Job:
        if not self.exists:
            raise rpc_error(grpc.StatusCode.NOT_FOUND)
        return scheduler_pb2.Job(id=request.id, status="queued")


@dataclass
class FakeDownstream:
    output: FakeOutput
    jobs: FakeJobs = field(default_factory=FakeJobs)


async def body(response: Any) -> bytes:
    if isinstance(response, StreamingResponse):
        return b"".join([part async for part in response.body_iterator])  # type: ignore[misc]
    return bytes(response.body)


async def test_a_read_in_pages_with_the_stored_state_in_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "PAGE_BYTES", 4)
    down = FakeDownstream(FakeOutput(b"0123456789abc", complete=True))
    r = await logs.job_logs(JOB, CALLER, down, offset=2, follow=False, attempt=None)  # type: ignore[arg-type]
    assert await body(r) == b"23456789abc"
    assert r.headers["GpuFleet-Output-Complete"] == "true"
    assert r.headers["GpuFleet-Output-Truncated"] == "false"
    assert r.headers["GpuFleet-Output-Size"] == "13"
    assert r.media_type == "text/plain; charset=utf-8"
    assert {q.attempt for q in down.output.requests[1:]} == {1}  # later pages pinned to the same attempt


async def test_a_job_monitoring_has_not_heard_of_yet_is_empty_and_incomplete() -> None:
    down = FakeDownstream(FakeOutput(known=False))
    r = await logs.job_logs(JOB, CALLER, down, offset=0, follow=False, attempt=None)  # type: ignore[arg-type]
    assert await body(r) == b"" and r.headers["GpuFleet-Output-Complete"] == "false"


async def test_an_unknown_or_foreign_job_is_not_found() -> None:
    down = FakeDownstream(FakeOutput(known=False), FakeJobs(exists=False))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await logs.job_logs(JOB, CALLER, down, offset=0, follow=False, attempt=None)  # type: ignore[arg-type]
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_follow_resumes_from_its_offset_when_the_stream_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(logs.asyncio, "sleep", no_wait)
    page = output_pb2.OutputPage
    down = FakeDownstream(
        FakeOutput(
            follows=[
                [
                    page(job_id=JOB, attempt=1, offset=0, data=b"ab"),
                    page(job_id=JOB, attempt=1, offset=2, data=b"cd"),
                    rpc_error(grpc.StatusCode.UNAVAILABLE),
                ],
                [page(job_id=JOB, attempt=1, offset=4, data=b"ef", complete=True)],
            ]
        )
    )
    r = await logs.job_logs(JOB, CALLER, down, offset=0, follow=True, attempt=None)  # type: ignore[arg-type]
    assert await body(r) == b"abcdef"
    resumed = down.output.requests[-1]
    assert (resumed.offset, resumed.attempt) == (4, 1)


@dataclass
class EndedJobs(FakeJobs):
    finished_at: str = ""

    async def GetJob(self, request: scheduler_pb2.GetJobRequest, **kw: Any) -> scheduler_pb2.Job:
        return scheduler_pb2.Job(id=request.id, status="succeeded", finished_at=self.finished_at)


def _late(rounds: int) -> list[list[Any]]:
    """Monitoring answers NOT_FOUND ``rounds`` times (the first call included), then has the output."""
    unknown = [[rpc_error(grpc.StatusCode.NOT_FOUND)] for _ in range(rounds)]
    page = output_pb2.OutputPage(job_id=JOB, attempt=1, offset=0, data=b"late but whole", complete=True)
    return [*unknown, [page]]


async def test_a_follow_waits_for_monitoring_that_learns_of_a_just_ended_job_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(logs.asyncio, "sleep", no_wait)
    just_now = datetime.now(UTC).isoformat()
    down = FakeDownstream(FakeOutput(follows=_late(logs.ENDED_ROUNDS + 5)), EndedJobs(finished_at=just_now))
    r = await logs.job_logs(JOB, CALLER, down, offset=0, follow=True, attempt=None)  # type: ignore[arg-type]
    assert await body(r) == b"late but whole"  # past ENDED_ROUNDS, but the job ended only just now

    long_ago = (datetime.now(UTC) - timedelta(seconds=logs.ENDED_GRACE_SECONDS + 1)).isoformat()
    down = FakeDownstream(FakeOutput(follows=_late(logs.ENDED_ROUNDS + 5)), EndedJobs(finished_at=long_ago))
    r = await logs.job_logs(JOB, CALLER, down, offset=0, follow=True, attempt=None)  # type: ignore[arg-type]
    assert await body(r) == b""  # it would be known by now: nothing was stored
