"""JobFeed: commits wake the streams of the jobs they saved; the poll of watched jobs' versions wakes
those another replica changed, in one read per round whatever the number of streams, and stops when
nothing is watched."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.scheduler.service_layer.assignments import JobFeed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_commit_wakes_only_the_streams_of_the_jobs_it_saved() -> None:
    feed = JobFeed()
    a, b = uuid.uuid4(), uuid.uuid4()
    with feed.watch(a) as woken_a, feed.watch(b) as woken_b:
        feed.changed({a})
        assert woken_a.is_set() and not woken_b.is_set()
    assert not feed.watching(a) and not feed.watching(b)


async def test_the_poll_reads_every_watched_job_at_once_and_wakes_those_that_moved() -> None:
    feed = JobFeed(poll_s=0.01)
    jobs = [uuid.uuid4() for _ in range(3)]
    stored = dict.fromkeys(jobs, T0)
    reads: list[list[uuid.UUID]] = []

    async def versions(ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
        reads.append(sorted(ids))
        return {j: stored[j] for j in ids}

    with feed.watch(jobs[0]) as w0, feed.watch(jobs[1]) as w1, feed.watch(jobs[2]) as w2:
        for job in jobs:
            feed.saw(job, T0)  # each stream read its job
        feed.keep_polling(versions)
        feed.keep_polling(versions)  # one poller, however many streams ask
        await asyncio.sleep(0.05)
        assert reads and all(r == sorted(jobs) for r in reads)
        assert not any(w.is_set() for w in (w0, w1, w2))  # nothing moved
        stored[jobs[1]] = T0 + timedelta(seconds=1)  # another replica wrote it
        await asyncio.sleep(0.05)
        assert w1.is_set() and not w0.is_set() and not w2.is_set()
    await asyncio.sleep(0.05)
    polls = len(reads)
    await asyncio.sleep(0.05)
    assert len(reads) == polls  # nothing watched: the poll ended


async def test_a_stream_that_has_not_read_yet_is_woken_by_the_poll() -> None:
    feed = JobFeed(poll_s=0.01)
    job = uuid.uuid4()

    async def versions(ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
        return dict.fromkeys(ids, T0)

    with feed.watch(job) as woken:
        feed.keep_polling(versions)
        await asyncio.sleep(0.05)
        assert woken.is_set()  # no version seen for it: read it (a change is never missed)


async def test_the_assignment_feed_polls_nodes_and_wakes_those_whose_live_jobs_moved() -> None:
    from services.scheduler.service_layer.assignments import AssignmentFeed, NodeVersion

    feed = AssignmentFeed(poll_s=0.01)
    n1, n2 = uuid.uuid4(), uuid.uuid4()
    job = uuid.uuid4()
    stored: dict[uuid.UUID, NodeVersion] = {n1: frozenset({(job, T0)}), n2: frozenset()}  # n2: idle

    async def versions(ids: list[uuid.UUID]) -> dict[uuid.UUID, NodeVersion]:
        return {n: stored[n] for n in ids}

    with feed.watch(n1) as w1, feed.watch(n2) as w2:
        feed.saw(n1, frozenset({(job, T0)}))
        feed.saw(n2, frozenset())
        feed.keep_polling(versions)
        await asyncio.sleep(0.05)
        assert not w1.is_set() and not w2.is_set()  # an idle node's stream is not woken either
        stored[n1] = frozenset({(job, T0 + timedelta(seconds=1))})  # a cancel written elsewhere
        await asyncio.sleep(0.05)
        assert w1.is_set() and not w2.is_set()
        stored[n2] = frozenset({(uuid.uuid4(), T0)})  # a placement elsewhere
        await asyncio.sleep(0.05)
        assert w2.is_set()
