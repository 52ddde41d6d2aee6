"""The output shipper: ordered chunks of at most 64 KiB with the right offsets, an end-of-output chunk
after the job's end, retries through a broker outage, and a counted drop only after giving up."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from services.agent.adapters import output_metrics
from services.agent.adapters.output_capture import FileOutputSource
from services.agent.domain.model import LocalJob
from services.agent.service_layer.output_shipper import OutputShipper
from shared.contracts.output import JobOutputChunkV1

ORG = str(uuid.uuid4())


class MemorySource:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def open(self) -> bool:
        return True

    def read(self, offset: int, limit: int) -> bytes:
        return bytes(self.data[offset : offset + limit])

    def size(self) -> int:
        return len(self.data)

    def close(self) -> None:
        self.closed = True


class RecordingPublisher:
    def __init__(self, failures: int = 0, *, always_fail: bool = False) -> None:
        self.chunks: list[JobOutputChunkV1] = []
        self.failures, self.always_fail = failures, always_fail
        self.sent = asyncio.Event()

    async def publish(self, chunk: JobOutputChunkV1) -> None:
        if self.always_fail or self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.chunks.append(chunk)
        self.sent.set()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def job(attempt: int = 1) -> LocalJob:
    return LocalJob(str(uuid.uuid4()), (0,), ORG, attempt=attempt)


def shipper(publisher: RecordingPublisher, source: MemorySource, **kw: object) -> OutputShipper:
    clock = Clock()
    return OutputShipper(
        publisher,
        lambda _handle: source,
        interval=0.01,
        clock=clock,
        sleep=clock.sleep,
        **kw,  # type: ignore[arg-type]
    )


def joined(chunks: list[JobOutputChunkV1]) -> bytes:
    out = b""
    for c in chunks:
        assert c.offset == len(out)  # contiguous, in order
        out += c.data
    return out


async def test_output_is_shipped_in_ordered_bounded_chunks_then_eof() -> None:
    source, publisher = MemorySource(), RecordingPublisher()
    s = shipper(publisher, source, chunk_bytes=1000)
    j = job()
    source.data += b"a" * 2500
    s.follow(j, handle=None)  # type: ignore[arg-type]
    await publisher.sent.wait()
    source.data += b"b" * 10
    s.ended(j.job_id, j.attempt)
    await s.close(timeout=5)
    chunks = publisher.chunks
    assert joined(chunks) == b"a" * 2500 + b"b" * 10
    assert all(len(c.data) <= 1000 for c in chunks)
    assert chunks[-1].eof and chunks[-1].offset + len(chunks[-1].data) == 2510
    assert [c.eof for c in chunks].count(True) == 1
    assert {(str(c.job_id), c.attempt, str(c.organization_id)) for c in chunks} == {(j.job_id, 1, ORG)}
    assert source.closed and s.shipping() == 0


async def test_the_short_output_of_an_ended_job_is_one_chunk_marked_last() -> None:
    source, publisher = MemorySource(), RecordingPublisher()
    s = shipper(publisher, source, chunk_bytes=1000)
    j = job()
    source.data += b"hi\n"
    s.follow(j, handle=None)  # type: ignore[arg-type]
    s.ended(j.job_id, j.attempt)
    await s.close(timeout=5)
    assert [(c.offset, c.data, c.eof) for c in publisher.chunks] == [(0, b"hi\n", True)]


async def test_output_of_exactly_one_chunk_still_ends_with_an_empty_last_chunk() -> None:
    source, publisher = MemorySource(), RecordingPublisher()
    s = shipper(publisher, source, chunk_bytes=4)
    j = job()
    source.data += b"abcd"  # a full read may have more behind it: the end is an empty chunk after it
    s.follow(j, handle=None)  # type: ignore[arg-type]
    s.ended(j.job_id, j.attempt)
    await s.close(timeout=5)
    assert [(c.offset, c.data, c.eof) for c in publisher.chunks] == [(0, b"abcd", False), (4, b"", True)]


async def test_a_broker_outage_delays_but_loses_nothing() -> None:
    source, publisher = MemorySource(), RecordingPublisher(failures=5)
    s = shipper(publisher, source, chunk_bytes=64)
    j = job()
    source.data += bytes(range(256)) * 3
    s.follow(j, handle=None)  # type: ignore[arg-type]
    s.ended(j.job_id, j.attempt)
    await s.close(timeout=5)
    assert joined(publisher.chunks) == bytes(range(256)) * 3
    assert publisher.chunks[-1].eof


async def test_gives_up_only_after_the_job_ended_and_counts_the_drop() -> None:
    source, publisher = MemorySource(), RecordingPublisher(always_fail=True)
    s = shipper(publisher, source, give_up_seconds=60)
    j = job()
    source.data += b"x" * 300
    before = output_metrics.OUTPUT_DROPPED_BYTES._value.get()
    s.follow(j, handle=None)  # type: ignore[arg-type]
    s.ended(j.job_id, j.attempt)
    await s.close(timeout=5)
    assert publisher.chunks == [] and s.shipping() == 0
    assert output_metrics.OUTPUT_DROPPED_BYTES._value.get() - before == 300


async def test_a_job_without_organization_or_source_is_not_followed() -> None:
    publisher = RecordingPublisher()
    s = OutputShipper(publisher, lambda _h: None)
    s.follow(job(), handle=None)  # type: ignore[arg-type]
    s2 = shipper(publisher, MemorySource())
    s2.follow(LocalJob(str(uuid.uuid4()), (0,), None), handle=None)  # type: ignore[arg-type]
    assert s.shipping() == 0 and s2.shipping() == 0


def test_file_source_reads_by_offset_and_survives_removal(tmp_path: Path) -> None:
    path = tmp_path / "output"
    src = FileOutputSource(path)
    assert src.open()  # created when the supervisor has not yet
    path.write_bytes(b"0123456789")
    assert src.read(3, 4) == b"3456" and src.read(10, 5) == b""
    path.unlink()  # the agent removes the job's folder after the job ended
    assert src.read(0, 100) == b"0123456789" and src.size() == 10
    src.close()


async def test_the_agent_ships_a_jobs_output_and_ends_it_before_releasing_the_job() -> None:
    from services.agent.domain.model import Assignment, JobExit
    from services.agent.service_layer.agent import AgentConfig, NodeAgent
    from services.agent.service_layer.report_queue import ReportQueue

    from .fakes import FakeBackend, FakeFleet, FakePublisher, FakeRunner, FakeScheduler, MemoryStore

    runner, publisher = FakeRunner(), RecordingPublisher()
    job_id = str(uuid.uuid4())
    opened_after_release: list[bool] = []

    class HeldSource(MemorySource):
        def open(self) -> bool:  # follow() and ended() hold the output open: both before release()
            opened_after_release.append(runner.handles[job_id].released)
            return True

    source = HeldSource()
    shipper_ = OutputShipper(publisher, lambda _h: source, interval=0.01)
    config = AgentConfig(hostname="h", provider="p", organization_id=None, is_spot=False, agent_version="t")
    backend = FakeBackend()
    agent = NodeAgent(
        config,
        backend,
        FakeFleet(),
        FakeScheduler(),
        runner,
        FakePublisher(),
        ReportQueue(MemoryStore()),
        output=shipper_,
    )
    agent.driver_version, agent.devices = backend.discover()
    agent.registration = await agent.fleet.register("h", "", "", "", [], None, False, "")
    assignment = Assignment(
        job_id=job_id, command="x", gpu_indices=(0,), organization_id=ORG, status="scheduled", attempt=2
    )
    await agent.apply([assignment])
    source.data += b"printed\n"
    runner.handles[job_id].exit.set_result(JobExit(exit_code=0, output_tail="printed\n"))
    await shipper_.close(timeout=5)
    assert joined(publisher.chunks) == b"printed\n" and publisher.chunks[-1].eof
    assert {c.attempt for c in publisher.chunks} == {2}
    async with asyncio.timeout(5):  # released once its report is on the disk (a worker thread's fsync)
        while not runner.handles[job_id].released:
            await asyncio.sleep(0.01)
    assert opened_after_release == [False, False]
