"""Job output handlers over an in-memory unit of work: store-time truncation, replays, reads, follow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from services.monitoring.domain.allocations import Hold
from services.monitoring.domain.output import INCOMPLETE_MARKER, cut_marker
from services.monitoring.service_layer import output_commands as c
from services.monitoring.service_layer.output_handlers import OutputDependencies, follow_output, handle
from services.monitoring.service_layer.output_ports import (
    AttemptKey,
    OutputSignals,
    ParkedChunk,
    StoredAttempt,
)
from shared.errors import NotFound

from .fakes import FakeAllocations

ORG, OTHER = uuid.uuid4(), uuid.uuid4()
NODE, ELSEWHERE = uuid.uuid4(), uuid.uuid4()


class FakeOutputStore:
    def __init__(self, allocations: FakeAllocations | None = None) -> None:
        self.attempts: dict[AttemptKey, StoredAttempt] = {}
        self.chunks: dict[AttemptKey, dict[int, bytes]] = {}
        self.parked: dict[tuple[UUID, int, UUID, int], ParkedChunk] = {}
        self.allocations = allocations or FakeAllocations()
        self.now = datetime.now(UTC)


class FakeOutputUow:
    def __init__(self, store: FakeOutputStore, org: UUID | None) -> None:
        self.store, self.org = store, org
        self.allocations = store.allocations

    async def park_chunk(self, chunk: ParkedChunk) -> bool:
        key = (chunk.job_id, chunk.attempt, chunk.node_id, chunk.offset)
        if key in self.store.parked:
            return False
        self.store.parked[key] = chunk
        return True

    async def take_parked(self, job_id: UUID, attempt: int) -> list[ParkedChunk]:
        keys = sorted(k for k in self.store.parked if k[:2] == (job_id, attempt))
        return sorted((self.store.parked.pop(k) for k in keys), key=lambda p: p.offset)

    async def delete_parked_older_than(self, seconds: float) -> int:
        return 0

    def _visible(self, row: StoredAttempt | None) -> StoredAttempt | None:
        if row is None or (self.org is not None and row.organization_id != self.org):
            return None
        return StoredAttempt(**vars(row))

    async def lock_attempt(self, job_id: UUID, attempt: int) -> StoredAttempt | None:
        return self._visible(self.store.attempts.get((job_id, attempt)))

    async def lock_attempt_rows(self, keys: list[tuple[UUID, int]]) -> dict[tuple[UUID, int], StoredAttempt]:
        found = {k: await self.lock_attempt(*k) for k in keys}
        return {k: row for k, row in found.items() if row is not None}

    async def create_attempt(self, row: StoredAttempt) -> StoredAttempt:
        self.store.attempts.setdefault((row.job_id, row.attempt), StoredAttempt(**vars(row)))
        return StoredAttempt(**vars(self.store.attempts[(row.job_id, row.attempt)]))

    async def record_attempts(self, rows: Sequence[StoredAttempt]) -> None:
        for row in rows:
            await self.create_attempt(row)
            if row.project_id is not None:
                await self.set_project(row.job_id, row.attempt, row.project_id)

    async def save_attempt(self, row: StoredAttempt) -> None:
        self.store.attempts[(row.job_id, row.attempt)] = StoredAttempt(**vars(row))

    async def set_project(self, job_id: UUID, attempt: int, project_id: UUID) -> None:
        row = self.store.attempts.get((job_id, attempt))
        if row is not None and row.project_id is None:
            row.project_id = project_id

    async def add_chunk(self, row: StoredAttempt, offset: int, data: bytes) -> bool:
        chunks = self.store.chunks.setdefault((row.job_id, row.attempt), {})
        if offset in chunks:
            return False
        chunks[offset] = data
        return True

    async def drop_tail_before(self, row: StoredAttempt, raw: int) -> int:
        chunks = self.store.chunks.get((row.job_id, row.attempt), {})
        gone = [o for o, d in chunks.items() if o >= row.head and o + len(d) <= raw]
        for o in gone:
            del chunks[o]
        return len(gone)

    async def mark_ended(self, ended: list[tuple[UUID, UUID, int]]) -> list[tuple[UUID, int]]:
        recorded = []
        for organization_id, job_id, attempt in ended:
            row = self.store.attempts.get((job_id, attempt))
            if row is None or row.ended_at is not None or row.organization_id != organization_id:
                continue
            row.ended_at = self.store.now
            recorded.append((job_id, attempt))
        return recorded

    async def find_attempt(self, job_id: UUID, attempt: int | None) -> StoredAttempt | None:
        rows = [r for (j, _), r in self.store.attempts.items() if j == job_id and self._visible(r)]
        if attempt is not None:
            rows = [r for r in rows if r.attempt == attempt]
        return self._visible(max(rows, key=lambda r: r.attempt)) if rows else None

    async def raw_bytes(self, job_id: UUID, attempt: int, start: int, end: int) -> bytes:
        out = b""
        for o, d in sorted(self.store.chunks.get((job_id, attempt), {}).items()):
            lo, hi = max(start, o), min(end, o + len(d))
            if lo < hi:
                out += d[lo - o : hi - o]
        return out

    async def complete_ended(self, grace_seconds: float) -> list[AttemptKey]:
        done = []
        for key, row in self.store.attempts.items():
            if (
                not row.complete
                and not any(k[:2] == key for k in self.store.parked)
                and row.ended_at
                and row.ended_at < self.store.now - timedelta(seconds=grace_seconds)
            ):
                row.complete = row.incomplete = True
                done.append(key)
        return done

    async def delete_older_than(self, days: int) -> int:
        return 0


def deps(store: FakeOutputStore, head: int = 1000, tail: int = 1000) -> OutputDependencies:
    @asynccontextmanager
    async def uow(*, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[FakeOutputUow]:
        assert system or org_id is not None
        yield FakeOutputUow(store, None if system else org_id)

    return OutputDependencies(uow=uow, signals=OutputSignals(), head=head, tail=tail, recheck_seconds=30)


def chunk(
    job: UUID, offset: int, data: bytes, *, eof: bool = False, node: UUID | None = NODE
) -> c.OutputChunk:
    return c.OutputChunk(node, job, 1, offset, data, eof)


async def place(
    d: OutputDependencies, job: UUID, *, node: UUID = NODE, org: UUID = ORG, attempt: int = 1
) -> None:
    """The job topic's word that ``job``'s attempt runs on ``node`` (one GPU)."""
    hold = Hold(job, attempt, uuid.uuid4(), node, org, None, datetime.now(UTC))
    await handle(c.RecordJobAttempt(org, job, attempt, holds=(hold,)), d)


async def read(d: OutputDependencies, job: UUID, offset: int = 0, org: UUID = ORG) -> bytes:
    page = await handle(c.ReadOutput(org, job, None, offset, 0), d)
    return page.data


async def test_chunks_replayed_or_re_cut_are_stored_once() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    await handle(c.StoreOutputChunks((chunk(job, 0, b"hello "), chunk(job, 6, b"world"))), d)
    again = await handle(c.StoreOutputChunks((chunk(job, 0, b"hello "), chunk(job, 3, b"lo world!"))), d)
    assert again == 1  # only the "!" was new
    assert await read(d, job) == b"hello world!"
    assert await read(d, job, offset=6) == b"world!"


async def test_store_time_truncation_keeps_head_and_tail_with_marker() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store, head=100, tail=100)
    await place(d, job)
    raw = b"".join(b"line %04d\n" % i for i in range(200))  # 2000 bytes
    for at in range(0, len(raw), 64):
        await handle(c.StoreOutputChunks((chunk(job, at, raw[at : at + 64]),)), d)
    await handle(c.StoreOutputChunks((chunk(job, len(raw), b"", eof=True),)), d)
    page = await handle(c.ReadOutput(ORG, job, None, 0, 0), d)
    assert page.truncated and page.complete and page.cut_bytes == 1800
    assert page.data == raw[:100] + cut_marker(1800, 100, 100) + raw[-100:]
    stored = sum(len(x) for x in store.chunks[(job, 1)].values())
    assert stored <= 100 + 100 + 2 * 64  # bounded: the head, the tail window and the chunks across edges


async def test_another_organizations_job_is_not_found_like_an_unknown_one() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    await handle(c.StoreOutputChunks((chunk(job, 0, b"secret"),)), d)
    for org, jid in ((OTHER, job), (ORG, uuid.uuid4())):
        with pytest.raises(NotFound):
            await read(d, jid, org=org)


async def test_a_chunk_from_a_node_the_job_is_not_placed_on_is_dropped() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    forged = (chunk(job, 0, b"forged", node=ELSEWHERE), chunk(job, 0, b"no node", node=None))
    assert await handle(c.StoreOutputChunks(forged), d) == 0
    await handle(c.StoreOutputChunks((chunk(job, 0, b"real"),)), d)
    assert await read(d, job) == b"real"


async def test_a_chunk_before_its_placement_is_parked_then_applied_or_dropped_by_node() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await handle(c.RecordJobAttempt(ORG, job, 1), d)  # submitted: the attempt exists, not placed yet
    early = (chunk(job, 0, b"early "), chunk(job, 0, b"forged", node=ELSEWHERE), chunk(job, 6, b"", eof=True))
    assert await handle(c.StoreOutputChunks(early), d) == 0
    with pytest.raises(NotFound):  # nothing readable yet, and the attempt not complete
        await handle(c.ReadOutput(OTHER, job, None, 0, 0), d)
    assert (await handle(c.ReadOutput(ORG, job, None, 0, 0), d)).data == b""
    await handle(c.RecordJobAttempt(ORG, job, 1, ended_attempt=1), d)  # ended before placement came
    store.now += timedelta(hours=1)
    assert await handle(c.CompleteEndedOutput(grace_seconds=10), d) == 0  # chunks still parked
    await place(d, job)
    page = await handle(c.ReadOutput(ORG, job, None, 0, 0), d)
    assert (page.data, page.complete) == (b"early ", True)  # its own end of output: no marker
    assert store.parked == {}


async def test_follow_sends_stored_then_new_output_and_ends_at_eof() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    await handle(c.StoreOutputChunks((chunk(job, 0, b"one\n"),)), d)
    got: list[bytes] = []

    async def follower() -> None:
        async for page in follow_output(c.FollowOutput(ORG, job, None, 0), d):
            got.append(page.data)

    task = asyncio.create_task(follower())
    while d.signals.followers() == 0 or not got:
        await asyncio.sleep(0)
    await handle(c.StoreOutputChunks((chunk(job, 4, b"two\n"),)), d)
    await handle(c.StoreOutputChunks((chunk(job, 8, b"", eof=True),)), d)
    await asyncio.wait_for(task, 5)  # a bound against a hang, not a timing assertion
    assert b"".join(got) == b"one\ntwo\n"


async def test_an_attempt_whose_agent_died_completes_from_the_job_end_with_a_marker() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    await handle(c.StoreOutputChunks((chunk(job, 0, b"partial"),)), d)
    await handle(c.RecordJobAttempt(ORG, job, 1, ended_attempt=1), d)
    assert await handle(c.CompleteEndedOutput(grace_seconds=10), d) == 0  # within the grace
    store.now += timedelta(seconds=11)
    assert await handle(c.CompleteEndedOutput(grace_seconds=10), d) == 1
    page = await handle(c.ReadOutput(ORG, job, None, 0, 0), d)
    assert page.complete and page.data == b"partial" + INCOMPLETE_MARKER
    pages = [p async for p in follow_output(c.FollowOutput(ORG, job, None, 0), d)]
    assert b"".join(p.data for p in pages) == b"partial" + INCOMPLETE_MARKER


async def test_a_requeue_starts_a_new_latest_attempt() -> None:
    store, job = FakeOutputStore(), uuid.uuid4()
    d = deps(store)
    await place(d, job)
    await handle(c.StoreOutputChunks((chunk(job, 0, b"first try"),)), d)
    await handle(c.RecordJobAttempt(ORG, job, 2, ended_attempt=1), d)
    page = await handle(c.ReadOutput(ORG, job, None, 0, 0), d)
    assert (page.attempt, page.data, page.complete) == (2, b"", False)
    first = await handle(c.ReadOutput(ORG, job, 1, 0, 0), d)
    assert first.data == b"first try"


async def test_a_batch_of_job_events_is_applied_job_by_job_in_topic_order() -> None:
    store, one, two = FakeOutputStore(), uuid.uuid4(), uuid.uuid4()
    d = deps(store)
    events = (
        c.RecordJobAttempt(ORG, one, 1),
        c.RecordJobAttempt(ORG, two, 1, ended_attempt=1),
        c.RecordJobAttempt(ORG, one, 2, ended_attempt=1),  # one requeued: attempt 1 ended, 2 begins
        c.RecordJobAttempt(ORG, two, 1, ended_attempt=1),  # a redelivery inside the batch
    )
    await handle(c.RecordJobAttempts(events), d)
    latest = await handle(c.ReadOutput(ORG, one, None, 0, 0), d)
    assert (latest.attempt, latest.complete) == (2, False)
    assert {k for k in store.attempts} >= {(one, 1), (one, 2), (two, 1)}
    assert store.attempts[(two, 1)].ended_at is not None and store.attempts[(one, 1)].ended_at is not None
