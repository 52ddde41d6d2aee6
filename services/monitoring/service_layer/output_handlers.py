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
from uuid import UUID

from shared.contracts.output import MAX_CHUNK_BYTES
from shared.errors import InvalidArgument, NotFound
from shared.handlers import dispatch

from ..adapters import metrics as sample_metrics
from ..adapters import output_metrics as metrics
from ..domain.allocations import (
    ChunkVerdict,
    Hold,
    HoldKey,
    Placement,
    Span,
    changed_span,
    coalesce,
    judge_chunk,
    merge,
)
from ..domain.output import INCOMPLETE_MARKER, Layout, Literal, accept_chunk, cut_marker, keep_range
from . import output_commands as commands
from .output_ports import (
    AttemptKey,
    OutputSignals,
    OutputUnitOfWork,
    OutputUnitOfWorkFactory,
    ParkedChunk,
    StoredAttempt,
)

log = logging.getLogger("gpufleet.monitoring.output")

DEFAULT_PAGE_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 2 * 1024 * 1024
FOLLOW_RECHECK_SECONDS = 5.0  # a follower re-reads this often even unwoken (another replica stored it)
# A chunk parked this long without its placement arriving is discarded (the job topic lags by seconds).
PARKED_MAX_SECONDS = 3600.0


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
    """Apply a batch in order in one transaction; returns how many bytes were stored.

    A chunk counts only when it comes from a node its attempt was placed on (the job topic says where);
    one that comes before the placement is known is parked, and applied or dropped by the job-topic
    consumer when it arrives. The attempts' locks (taken by that consumer too) make "not known yet,
    park it" and "placed now, apply what is parked" one after the other, never interleaved."""
    if not cmd.chunks:
        return 0
    stored = 0
    touched: list[AttemptKey] = []
    async with deps.uow(system=True) as uow:
        keys = sorted({(c.job_id, c.attempt) for c in cmd.chunks}, key=lambda k: (k[0].bytes, k[1]))
        await uow.allocations.lock_attempts(keys)
        placements = await uow.allocations.placements(keys)
        # The placed attempts' rows in one statement; each is changed in memory chunk by chunk (in the
        # batch's order) and written once at the end, all under the locks just taken.
        rows = await uow.lock_attempt_rows([k for k in keys if placements.get(k) is not None])
        changed: dict[AttemptKey, StoredAttempt] = {}
        for chunk in cmd.chunks:
            key = (chunk.job_id, chunk.attempt)
            placement = placements.get(key)
            verdict = judge_chunk(placement, chunk.node_id)
            if verdict is ChunkVerdict.PARK:
                assert chunk.node_id is not None
                parked = ParkedChunk(
                    chunk.node_id, chunk.job_id, chunk.attempt, chunk.offset, chunk.data, chunk.eof
                )
                if await uow.park_chunk(parked):
                    metrics.CHUNKS_PARKED.inc()
                continue
            if verdict is ChunkVerdict.REFUSE or placement is None:
                _refused(chunk.job_id, chunk.attempt, chunk.node_id)
                continue
            row = rows.get(key)
            if row is None:  # the job topic creates it with the placement; kept for a row pruned meanwhile
                row = rows[key] = await _placed_attempt(uow, deps, placement, chunk.job_id, chunk.attempt)
            stored += await _apply(uow, row, chunk.offset, chunk.data, chunk.eof, save=False)
            changed[key] = row
            touched.append(key)
        for row in changed.values():
            await uow.save_attempt(row)
    metrics.BYTES_STORED.inc(stored)
    deps.signals.notify(touched)
    return stored


def _refused(job_id: Any, attempt: int, node_id: Any) -> None:
    log.warning(
        "output chunk from a node its job attempt was not placed on (or naming none); dropped",
        extra={"job_id": str(job_id), "attempt": attempt, "node_id": str(node_id)},
    )
    metrics.CHUNKS_REFUSED.inc()


async def _placed_attempt(
    uow: OutputUnitOfWork, deps: OutputDependencies, placement: Placement, job_id: Any, attempt: int
) -> StoredAttempt:
    row = await uow.lock_attempt(job_id, attempt)
    if row is None:  # the job topic creates it with the placement; kept for a row pruned meanwhile
        row = await uow.create_attempt(
            StoredAttempt(
                placement.organization_id,
                job_id,
                attempt,
                deps.head,
                deps.tail,
                project_id=placement.project_id,
            )
        )
    return row


async def _apply(
    uow: OutputUnitOfWork, row: StoredAttempt, offset: int, data: bytes, eof: bool, save: bool = True
) -> int:
    """Apply one chunk to the attempt ``row`` (changed in place); ``save=False``: the caller writes
    the row itself (once, after the batch's chunks)."""
    accepted = accept_chunk(row.received, offset, data)
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
    if eof and not row.eof:
        row.eof, row.complete, row.incomplete = True, True, False
    if save:
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
    """A batch of job events in one short transaction (one commit per batch, not per event): the
    attempts' output rows, the GPUs' holds (and the samples they re-attribute), then the chunks that
    were parked waiting for a placement this batch brought. Locks, all sorted and all released at the
    commit: the attempts', then the GPUs', then the output rows job by job (each job's events keep
    their topic order), so two replicas' batches, and the sample and chunk consumers, never deadlock."""
    events = sorted(cmd.events, key=lambda e: e.job_id.bytes)
    keys = sorted(
        {(e.job_id, a) for e in events for a in _attempts_of(e)}
        | {h.key[:2] for e in events for h in e.holds},
        key=lambda k: (k[0].bytes, k[1]),
    )
    ended: list[AttemptKey] = []
    touched: list[AttemptKey] = []
    async with deps.uow(system=True) as uow:
        await uow.allocations.lock_attempts(keys)
        placed = await _record_holds(uow, [h for e in events for h in e.holds])
        await uow.record_attempts(_attempt_rows(events, deps))
        ended = await uow.mark_ended(
            [(e.organization_id, e.job_id, e.ended_attempt) for e in events if e.ended_attempt is not None]
        )
        touched = await _apply_parked(uow, deps, placed)
    if ended or touched:
        deps.signals.notify([*ended, *touched])


def _attempt_rows(events: list[commands.RecordJobAttempt], deps: OutputDependencies) -> list[StoredAttempt]:
    """The output rows the events' attempts need, one per attempt in key order (a job's project never
    changes, so any of its events names it)."""
    rows: dict[AttemptKey, StoredAttempt] = {}
    for event in events:
        for attempt in _attempts_of(event):
            known = rows.get((event.job_id, attempt))
            if known is None or (known.project_id is None and event.project_id is not None):
                rows[(event.job_id, attempt)] = StoredAttempt(
                    event.organization_id,
                    event.job_id,
                    attempt,
                    deps.head,
                    deps.tail,
                    project_id=event.project_id,
                )
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0].bytes, k[1]))]


def _attempts_of(event: commands.RecordJobAttempt) -> set[int]:
    return {event.attempt} | ({event.ended_attempt} if event.ended_attempt is not None else set())


async def _record_holds(uow: OutputUnitOfWork, holds: list[Hold]) -> list[AttemptKey]:
    """Merge the events' holds into the history under the GPUs' locks and re-attribute the samples whose
    owner changed; returns the attempts now known to be placed (a hold naming its node)."""
    if not holds:
        return []
    await uow.allocations.lock_gpus(h.gpu_id for h in holds)
    known = await uow.allocations.holds(
        sorted({h.key for h in holds}, key=lambda k: (k[0].bytes, k[1], k[2].bytes))
    )
    merged: dict[HoldKey, Hold] = {}
    spans: list[Span] = []
    for hold in holds:
        before = merged.get(hold.key) or known.get(hold.key)
        after = merge(before, hold)
        span = changed_span(before, after)
        if span is not None:
            spans.append(span)
            merged[hold.key] = after
    await uow.allocations.save_holds(list(merged.values()))
    rewritten = await uow.allocations.reattribute(coalesce(spans))
    sample_metrics.SAMPLES_REATTRIBUTED.inc(rewritten)
    return sorted(
        {h.key[:2] for h in merged.values() if h.node_id is not None}, key=lambda k: (k[0].bytes, k[1])
    )


async def _apply_parked(
    uow: OutputUnitOfWork, deps: OutputDependencies, keys: list[AttemptKey]
) -> list[AttemptKey]:
    """The chunks parked for attempts whose placement just became known: applied when they came from
    one of its nodes, dropped (with a warning) otherwise."""
    placements = await uow.allocations.placements(keys)
    touched: list[AttemptKey] = []
    for key, placement in placements.items():
        parked = await uow.take_parked(*key)
        if not parked:
            continue
        row = await _placed_attempt(uow, deps, placement, *key)
        stored = 0
        for chunk in parked:
            if judge_chunk(placement, chunk.node_id) is not ChunkVerdict.APPLY:
                _refused(chunk.job_id, chunk.attempt, chunk.node_id)
                continue
            stored += await _apply(uow, row, chunk.offset, chunk.data, chunk.eof)
        metrics.BYTES_STORED.inc(stored)
        touched.append(key)
    return touched


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
        dropped = await uow.delete_parked_older_than(PARKED_MAX_SECONDS)
        if dropped:
            log.warning(
                "discarded output chunks whose job placement never came",
                extra={"chunks": dropped, "seconds": PARKED_MAX_SECONDS},
            )
        return await uow.delete_older_than(cmd.retention_days)


# ---------------------------------------------------------------------------------------- reads


async def read_output(cmd: commands.ReadOutput, deps: OutputDependencies) -> OutputPage:
    if cmd.offset < 0:
        raise InvalidArgument("offset must be >= 0", field="offset")
    if cmd.limit < 0 or cmd.limit > MAX_PAGE_BYTES:
        raise InvalidArgument(f"limit must be between 0 and {MAX_PAGE_BYTES}", field="limit")
    limit = cmd.limit or DEFAULT_PAGE_BYTES
    async with deps.uow(org_id=cmd.organization_id) as uow:
        row = await _attempt(uow, cmd.job_id, cmd.attempt, cmd.project_id)
        layout = layout_of(row)
        data = await _view_bytes(uow, row, layout, cmd.offset, limit)
    return _page(row, layout, cmd.offset, data)


def visible_to(row: StoredAttempt, bound_project: UUID | None) -> bool:
    """An unbound key reads every attempt of its organization; a project-bound key only those of its
    project's jobs (not one of no project, nor one recorded before output kept projects)."""
    return bound_project is None or row.project_id == bound_project


async def _attempt(
    uow: OutputUnitOfWork, job_id: Any, attempt: int | None, bound_project: UUID | None
) -> StoredAttempt:
    row = await uow.find_attempt(job_id, attempt)
    # Unknown, another organization's (row-level security hides it) or, for a project-bound key,
    # another project's: the same answer.
    if row is None or not visible_to(row, bound_project):
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
        row = await _attempt(uow, cmd.job_id, cmd.attempt, cmd.project_id)
    key: AttemptKey = (row.job_id, row.attempt)
    view_offset, raw, first = cmd.offset, -1, True
    with deps.signals.subscribe(key) as woken:
        while True:
            woken.clear()  # before reading: a change committed after this read wakes the wait below
            async with deps.uow(org_id=cmd.organization_id) as uow:
                row = await _attempt(uow, row.job_id, row.attempt, cmd.project_id)
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
