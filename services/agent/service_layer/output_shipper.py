"""Ships each job attempt's whole output to monitoring while the job runs (``gpufleet.output.v1``).

The job writes its output to a file (its supervisor's ``output``, see adapters/shim.py); nothing in the
job's path changes. Per attempt, one task reads that file from where it got to and publishes what is
new, in chunks of at most ``chunk_bytes``, every ``interval`` seconds (at once while a backlog is
left), each chunk after the previous one was acknowledged, so one job's chunks reach the topic in
order. When the job's last process is gone (:meth:`OutputShipper.ended`) it reads to the end and marks
the end of output: on the chunk holding the file's last bytes (a short read once the job ended, so the
output of a short job is one chunk), or on an empty chunk after the others.

The buffer is the file itself, not memory: a broker hiccup only delays the reads (the task retries the
same chunk with backoff, the job never waits), and the file stays readable through its open descriptor
after the agent removes the job's folder. Memory per attempt is one chunk. Output is dropped only when
the job has ended and the broker stayed unreachable for ``give_up_seconds`` after that: the rest is
counted (``gpufleet_agent_output_dropped_bytes_total``) and monitoring completes the attempt from the
job's end, with a marker saying the output may be incomplete. An agent restarted while a job runs
re-reads its output from the start; monitoring keeps each byte once, by offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from shared.contracts.output import JobOutputChunkV1

from ..adapters import output_metrics as prom
from ..domain.model import LocalJob
from .ports import JobHandle

log = logging.getLogger("gpufleet.agent.output")

CHUNK_BYTES = 64 * 1024
INTERVAL_SECONDS = 0.5
GIVE_UP_SECONDS = 300.0
RETRY_MAX_SECONDS = 5.0


class OutputSource(Protocol):
    """One attempt's output as it grows (a file the job appends to)."""

    def open(self) -> bool:
        """Hold the output open (it may be removed afterwards); False when it cannot be opened."""

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (empty: nothing more there now)."""

    def size(self) -> int: ...

    def close(self) -> None: ...


class OutputPublisher(Protocol):
    async def publish(self, chunk: JobOutputChunkV1) -> None:
        """Publish one chunk and wait for the broker's acknowledgement; raises on failure."""


@dataclass
class _Attempt:
    job: LocalJob
    organization_id: UUID
    source: OutputSource
    # This agent's registered node id (it returns None until registered): monitoring keeps only chunks
    # from a node the job was placed on, so a chunk waits for it like for the broker. None: no node
    # named (a monitoring of before attribution accepts that; today's refuses it).
    node_id: Callable[[], str | None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float | None = None
    task: asyncio.Task[None] | None = None


class OutputShipper:
    def __init__(
        self,
        publisher: OutputPublisher,
        source_of: Callable[[JobHandle], OutputSource | None],
        *,
        chunk_bytes: int = CHUNK_BYTES,
        interval: float = INTERVAL_SECONDS,
        give_up_seconds: float = GIVE_UP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self.publisher, self.source_of = publisher, source_of
        self.chunk_bytes, self.interval, self.give_up_seconds = chunk_bytes, interval, give_up_seconds
        self.clock, self.sleep = clock, sleep
        self._attempts: dict[tuple[str, int], _Attempt] = {}

    def follow(
        self, job: LocalJob, handle: JobHandle, node_id: Callable[[], str | None] | None = None
    ) -> None:
        """Start shipping the output of ``job`` (started here or taken back after a restart).
        ``node_id``: this agent's registered node, named in every chunk (monitoring keeps only chunks
        from a node the job was placed on; the organization it sends is no longer used)."""
        key = (job.job_id, job.attempt)
        if key in self._attempts or job.organization_id is None:
            return
        source = self.source_of(handle)
        if source is None:
            return
        source.open()
        entry = _Attempt(job, UUID(job.organization_id), source, node_id)
        self._attempts[key] = entry
        entry.task = asyncio.create_task(self._ship(entry), name=f"output-{job.job_id}")
        prom.ATTEMPTS_SHIPPING.set(len(self._attempts))

    def ended(self, job_id: str, attempt: int) -> None:
        """The job's processes are gone: ship the rest, then the end of output. Call it before the
        job's files are removed (the output is held open from here on)."""
        entry = self._attempts.get((job_id, attempt))
        if entry is None or entry.ended.is_set():
            return
        entry.source.open()
        entry.ended_at = self.clock()
        entry.ended.set()

    def shipping(self) -> int:
        return len(self._attempts)

    async def close(self, timeout: float) -> None:
        """Give the attempts ``timeout`` seconds to ship what they have, then stop them."""
        tasks = [e.task for e in self._attempts.values() if e.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task

    async def _ship(self, entry: _Attempt) -> None:
        offset = 0
        try:
            while True:
                ended = entry.ended.is_set()  # read before the file: an end seen here covers all of it
                data = entry.source.read(offset, self.chunk_bytes)
                if data:
                    # A short read of an ended job's file is all that is left of it (nothing appends
                    # once its last process is gone): that chunk is the last one too, one send, not two.
                    last = ended and len(data) < self.chunk_bytes
                    if not await self._send(entry, offset, data, eof=last) or last:
                        return
                    offset += len(data)
                    continue  # read on until nothing is left, then wait
                if ended:
                    await self._send(entry, offset, b"", eof=True)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await entry.ended.wait()
        finally:
            entry.source.close()
            self._attempts.pop((entry.job.job_id, entry.job.attempt), None)
            prom.ATTEMPTS_SHIPPING.set(len(self._attempts))

    async def _send(self, entry: _Attempt, offset: int, data: bytes, *, eof: bool) -> bool:
        """Publish one chunk, retrying while the broker is away; False when it gave up (dropped)."""
        failing_since: float | None = None
        delay = self.interval
        while True:
            try:
                node_id = entry.node_id() if entry.node_id is not None else None
                if entry.node_id is not None and node_id is None:
                    raise RuntimeError("the agent is not registered yet (a chunk names its node)")
                chunk = JobOutputChunkV1(
                    job_id=UUID(entry.job.job_id),
                    attempt=entry.job.attempt,
                    organization_id=entry.organization_id,
                    offset=offset,
                    data=data,
                    eof=eof,
                    node_id=UUID(node_id) if node_id else None,
                )
                await self.publisher.publish(chunk)
            except Exception as exc:
                now = self.clock()
                if failing_since is None:
                    failing_since = now
                    log.warning(
                        "cannot ship job output (%r); retrying, the job is not held up",
                        exc,
                        extra={"job_id": entry.job.job_id, "reason": repr(exc)},
                    )
                if (
                    entry.ended_at is not None
                    and now - max(failing_since, entry.ended_at) >= self.give_up_seconds
                ):
                    dropped = max(entry.source.size() - offset, len(data))
                    prom.OUTPUT_DROPPED_BYTES.inc(dropped)
                    log.error(
                        "gave up shipping a finished job's output; the rest is dropped",
                        extra={"job_id": entry.job.job_id, "bytes": dropped, "offset": offset},
                    )
                    return False
                await self.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if failing_since is not None:
                log.info("shipping job output again", extra={"job_id": entry.job.job_id})
            prom.OUTPUT_SHIPPED_BYTES.inc(len(data))
            return True
