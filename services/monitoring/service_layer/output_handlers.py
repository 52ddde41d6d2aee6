"""Job output use cases: store chunks (head + tail past the limit), learn of attempts from the job
topic, complete attempts whose agent never sent their end, read a page, follow an attempt, retention.

No processed-events ledger: a chunk's identity is its position, (job, attempt, offset), and
:func:`~services.monitoring.domain.output.accept_chunk` keeps each byte once however often a chunk is
delivered or re-read, so the chunk table is its own ledger (as the samples table is for samples).
Job events are applied as idempotent upserts for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.contracts.output import MAX_CHUNK_BYTES
from shared.errors import InvalidArgument, NotFound
from shared.handlers import dispatch

from ..adapters import output_metrics as metrics
from ..domain.output import INCOMPLETE_MARKER, Layout, Literal, accept_chunk, cut_marker, keep_range
from . import output_commands as commands
from .output_ports import AttemptKey, OutputSignals, OutputUnitOfWork, OutputUnitOfWorkFactory, StoredAttempt

log = logging.getLogger("gpufleet.monitoring.output")

DEFAULT_PAGE_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 2 * 1024 * 1024
FOLLOW_RECHECK_SECONDS = 5.0  # a follower re-reads this often even unwoken (another replica stored it)


@dataclass(frozen=True)
class OutputDependencies:
    uow: OutputUnitOfWorkFactory
    signals: OutputSignals
    head: int
    tail: int
    recheck_seconds: float = FOLLOW_RECHECK_SECONDS


@dataclass(frozen=True)
class OutputPage:
    job_id: str
    attempt: int
    offset: int
    data: bytes
    size: int
    complete: bool
    truncated: bool
    cut_bytes: int
    total_bytes: int


def layout_of(row: StoredAttempt) -> Layout:
    return Layout(row.received, row.head, row.tail, incomplete=row.incomplete and not row.eof)


# ---------------------------------------------------------------------------------------- writes


async def store_chunks(cmd: commands.StoreOutputChunks, deps: OutputDependencies) -> int:
    """Apply a batch in order in one transaction; returns how many bytes were stored."""
    if not cmd.chunks:
        return 0
    stored = 0
    touched: list[AttemptKey] = []
    async with deps.uow(system=True) as uow:
        for chunk in cmd.chunks:
            row = await uow.lock_attempt(chunk.job_id, chunk.attempt)
            if row is None:
                row = await uow.create_attempt(
                    StoredAttempt(chunk.organization_id, chunk.job_id, chunk.attempt, deps.head, deps.tail)
                )
            if row.organization_id != chunk.organization_id:
                # The job topic said whose job this is: a chunk claiming otherwise is never stored.
                log.warning(
                    "output chunk names another organization than its job; dropped",
                    extra={"job_id": str(chunk.job_id), "attempt": chunk.attempt},
                )
                metrics.CHUNKS_REFUSED.inc()
                continue
            stored += await _apply(uow, row, chunk)
            touched.append((row.job_id, row.attempt))
    metrics.BYTES_STORED.inc(stored)
    deps.signals.notify(touched)
    return stored


async def _apply(uow: OutputUnitOfWork, row: StoredAttempt, chunk: commands.OutputChunk) -> int:
    accepted = accept_chunk(row.received, chunk.offset, chunk.data)
    if accepted.duplicate:
        metrics.CHUNKS_DUPLICATE.inc()
    after = Layout(max(row.received, accepted.received), row.head, row.tail)
    stored = 0
    if accepted.filler:
        metrics.BYTES_LOST.inc(len(accepted.filler))
        log.warning(
            "output bytes never arrived; a marker of the same length stands for them",
            extra={"job_id": str(row.job_id), "attempt": row.attempt, "bytes": len(accepted.filler)},
        )
        stored += await _store(uow, row, after, accepted.filler_offset, accepted.filler)
    stored += await _store(uow, row, after, accepted.offset, accepted.data)
    if after.received > row.received:
        row.received = after.received
        if after.truncated:
            await uow.drop_tail_before(row, after.tail_start)
    if chunk.eof and not row.eof:
        row.eof, row.complete, row.incomplete = True, True, False
    await uow.save_attempt(row)
    return stored


async def _store(uow: OutputUnitOfWork, row: StoredAttempt, after: Layout, offset: int, data: bytes) -> int:
    """Store the parts of raw ``[offset, offset + len(data))`` that the head or the tail keep, in
    pieces of at most MAX_CHUNK_BYTES (what a read's range query relies on)."""
    stored = 0
    for start in range(0, len(data), MAX_CHUNK_BYTES):
        piece = data[start : start + MAX_CHUNK_BYTES]
        at = offset + start
        if keep_range(after, at, len(piece)) and await uow.add_chunk(row, at, piece):
            stored += len(piece)
    return stored


async def record_job_attempt(cmd: commands.RecordJobAttempt, deps: OutputDependencies) -> None:
    """Idempotent: the attempts exist (created once), the ended one is stamped once."""
    await record_job_attempts(commands.RecordJobAttempts((cmd,)), deps)


async def record_job_attempts(cmd: commands.RecordJobAttempts, deps: OutputDependencies) -> None:
    """A batch of job events in one transaction (one commit per batch, not per event). Applied job by
    job in a fixed order (each job's events keep their topic order), so two replicas' batches lock
    attempt rows in the same order and never deadlock."""
    ended: list[tuple[Any, int]] = []
    async with deps.uow(system=True) as uow:
        for event in sorted(cmd.events, key=lambda e: e.job_id.bytes):
            attempts = {event.attempt} | ({event.ended_attempt} if event.ended_attempt is not None else set())
            for attempt in sorted(attempts):
                if await uow.lock_attempt(event.job_id, attempt) is None:
                    await uow.create_attempt(
                        StoredAttempt(event.organization_id, event.job_id, attempt, deps.head, deps.tail)
                    )
            if event.ended_attempt is not None and await uow.mark_ended(
                event.organization_id, event.job_id, event.ended_attempt
            ):
                ended.append((event.job_id, event.ended_attempt))
    if ended:
        deps.signals.notify(ended)


async def complete_ended_output(cmd: commands.CompleteEndedOutput, deps: OutputDependencies) -> int:
    async with deps.uow(system=True) as uow:
        keys = await uow.complete_ended(cmd.grace_seconds)
    if keys:
        metrics.COMPLETED_WITHOUT_EOF.inc(len(keys))
        log.info(
            "output completed by the job's end (no end of output from the agent)",
            extra={"attempts": len(keys)},
        )
        deps.signals.notify(keys)
    return len(keys)


async def prune_output(cmd: commands.PruneOutput, deps: OutputDependencies) -> int:
    if cmd.retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    async with deps.uow(system=True) as uow:
        return await uow.delete_older_than(cmd.retention_days)


# ---------------------------------------------------------------------------------------- reads


async def read_output(cmd: commands.ReadOutput, deps: OutputDependencies) -> OutputPage:
    if cmd.offset < 0:
        raise InvalidArgument("offset must be >= 0", field="offset")
    if cmd.limit < 0 or cmd.limit > MAX_PAGE_BYTES:
        raise InvalidArgument(f"limit must be between 0 and {MAX_PAGE_BYTES}", field="limit")
    limit = cmd.limit or DEFAULT_PAGE_BYTES
    async with deps.uow(org_id=cmd.organization_id) as uow:
        row = await _attempt(uow, cmd.job_id, cmd.attempt)
        layout = layout_of(row)
        data = await _view_bytes(uow, row, layout, cmd.offset, limit)
    return _page(row, layout, cmd.offset, data)


async def _attempt(uow: OutputUnitOfWork, job_id: Any, attempt: int | None) -> StoredAttempt:
    row = await uow.find_attempt(job_id, attempt)
    if row is None:  # unknown, or another organization's (row-level security hides it): the same answer
        raise NotFound("no such job output", field="job_id")
    return row


async def _view_bytes(
    uow: OutputUnitOfWork, row: StoredAttempt, layout: Layout, offset: int, n: int
) -> bytes:
    parts = []
    for piece in layout.window(offset, n):
        if isinstance(piece, Literal):
            parts.append(piece.data)
        else:
            parts.append(await uow.raw_bytes(row.job_id, row.attempt, piece.start, piece.end))
    return b"".join(parts)


def _page(row: StoredAttempt, layout: Layout, offset: int, data: bytes) -> OutputPage:
    return OutputPage(
        job_id=str(row.job_id),
        attempt=row.attempt,
        offset=offset,
        data=data,
        size=layout.size,
        complete=row.complete,
        truncated=layout.truncated,
        cut_bytes=layout.cut,
        total_bytes=row.received,
    )


async def follow_output(cmd: commands.FollowOutput, deps: OutputDependencies) -> AsyncIterator[OutputPage]:
    """The stored output from view ``offset``, then new output as it is stored, until the attempt is
    complete. The first page comes at once (possibly empty). A follower that keeps up gets every byte
    the job printed, in order, even past the limit; one that falls behind the sliding tail gets a
    marker line saying how many bytes it missed and goes on from the oldest byte still kept."""
    if cmd.offset < 0:
        raise InvalidArgument("offset must be >= 0", field="offset")
    async with deps.uow(org_id=cmd.organization_id) as uow:
        row = await _attempt(uow, cmd.job_id, cmd.attempt)
    key: AttemptKey = (row.job_id, row.attempt)
    view_offset, raw, first = cmd.offset, -1, True
    with deps.signals.subscribe(key) as woken:
        while True:
            woken.clear()  # before reading: a change committed after this read wakes the wait below
            async with deps.uow(org_id=cmd.organization_id) as uow:
                row = await _attempt(uow, row.job_id, row.attempt)
                layout = layout_of(row)
                if raw < 0:
                    raw = layout.raw_of_view(view_offset)
                data, raw = await _follow_bytes(uow, row, layout, raw)
            done = row.complete and raw >= layout.received
            if done and layout.incomplete:
                data += INCOMPLETE_MARKER
            if data or first or done:
                yield _page(row, layout, view_offset, data)
                view_offset += len(data)
                first = False
            if done:
                return
            if data:
                continue  # more may be stored already: read on before waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deps.recheck_seconds):
                    await woken.wait()


async def _follow_bytes(
    uow: OutputUnitOfWork, row: StoredAttempt, layout: Layout, raw: int
) -> tuple[bytes, int]:
    """Up to a page of raw bytes from ``raw``; a marker first when bytes from ``raw`` on were cut
    (the head ended, or this reader fell behind the sliding tail)."""
    out = b""
    if raw < layout.received and not layout.kept(raw):
        out = cut_marker(layout.tail_start - raw, row.head, row.tail)
        raw = layout.tail_start
    end = min(layout.received, raw + DEFAULT_PAGE_BYTES)
    if layout.truncated and raw < layout.head:
        end = min(end, layout.head)
    if end > raw:
        out += await uow.raw_bytes(row.job_id, row.attempt, raw, end)
        raw = end
    return out, raw


Handler = Callable[[Any, OutputDependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.StoreOutputChunks: store_chunks,
    commands.RecordJobAttempt: record_job_attempt,
    commands.RecordJobAttempts: record_job_attempts,
    commands.CompleteEndedOutput: complete_ended_output,
    commands.PruneOutput: prune_output,
    commands.ReadOutput: read_output,
}


async def handle(cmd: object, deps: OutputDependencies) -> Any:
    return await dispatch(HANDLERS, cmd, deps)
