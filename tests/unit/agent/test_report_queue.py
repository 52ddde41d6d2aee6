from __future__ import annotations

import asyncio

from services.agent.domain.model import JobFinished, JobStarted
from services.agent.service_layer.ports import Unreachable
from services.agent.service_layer.report_queue import ReportQueue

from .fakes import NOW, FakeScheduler, MemoryStore


async def drain(queue: ReportQueue, scheduler: FakeScheduler, node: str | None = "n1") -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(scheduler, lambda: node, stop))
    async with asyncio.timeout(5):
        while queue.pending:
            await asyncio.sleep(0.01)
    stop.set()
    await task


def test_put_persists_before_returning():
    store = MemoryStore()
    queue = ReportQueue(store)
    queue.put(JobStarted("j1", NOW))
    assert store.saved == [JobStarted("j1", NOW)]


async def test_reports_are_delivered_in_order_and_forgotten():
    store, scheduler = MemoryStore(), FakeScheduler()
    queue = ReportQueue(store, retry_base=0.01)
    reports = [JobStarted("j1", NOW), JobFinished("j1", NOW, exit_code=0), JobStarted("j2", NOW)]
    for r in reports:
        queue.put(r)
    await drain(queue, scheduler)
    assert scheduler.delivered == reports
    assert scheduler.batches == [reports]  # everything pending went in one call
    assert store.saved == []


async def test_an_unreachable_scheduler_is_retried_without_reordering():
    store, scheduler = MemoryStore(), FakeScheduler()
    scheduler.outcomes = [Unreachable("down"), Unreachable("down"), None]
    queue = ReportQueue(store, retry_base=0.01)
    queue.put(JobStarted("j1", NOW))
    queue.put(JobFinished("j1", NOW, exit_code=1))
    await drain(queue, scheduler)
    assert scheduler.delivered == [JobStarted("j1", NOW), JobFinished("j1", NOW, exit_code=1)]


async def test_a_report_refused_for_good_is_acknowledged_and_forgotten_with_the_others():
    scheduler = FakeScheduler()
    scheduler.refused = {"gone"}
    queue = ReportQueue(MemoryStore(), retry_base=0.01)
    queue.put(JobFinished("gone", NOW, exit_code=0))
    queue.put(JobStarted("j2", NOW))
    await drain(queue, scheduler)
    assert scheduler.delivered == [JobStarted("j2", NOW)] and len(scheduler.batches) == 1


async def test_only_acknowledged_reports_are_forgotten_and_the_rest_resent_in_order():
    scheduler = FakeScheduler()
    scheduler.outcomes = [{"j1"}]  # the scheduler got through j1's reports, not j2's
    store = MemoryStore()
    queue = ReportQueue(store, retry_base=0.01)
    first = [JobStarted("j1", NOW), JobStarted("j2", NOW), JobFinished("j1", NOW, exit_code=0)]
    for r in first:
        queue.put(r)
    await drain(queue, scheduler)
    assert scheduler.batches == [first, [JobStarted("j2", NOW)]]
    assert store.saved == []


async def test_reports_queued_while_a_call_is_out_go_in_the_next_batch():
    scheduler = FakeScheduler()
    gate = asyncio.Event()
    original = scheduler.send_batch

    async def slow(node_id, reports):
        await gate.wait()
        return await original(node_id, reports)

    scheduler.send_batch = slow
    queue = ReportQueue(MemoryStore(), retry_base=0.01, batch_max=2)
    queue.put(JobStarted("j1", NOW))
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(scheduler, lambda: "n1", stop))
    await asyncio.sleep(0.01)  # the call for j1 is out
    for job in ("j2", "j3", "j4"):
        queue.put(JobStarted(job, NOW))
    gate.set()
    async with asyncio.timeout(5):
        while queue.pending:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    assert [[r.job_id for r in b] for b in scheduler.batches] == [["j1"], ["j2", "j3"], ["j4"]]


async def test_reports_left_by_a_previous_run_are_sent():
    left = [JobFinished("old", NOW, exit_code=3, output_tail="x")]
    scheduler = FakeScheduler()
    queue = ReportQueue(MemoryStore(left), retry_base=0.01)
    await drain(queue, scheduler)
    assert scheduler.delivered == left


async def test_nothing_is_sent_before_the_node_is_registered():
    scheduler = FakeScheduler()
    queue = ReportQueue(MemoryStore(), retry_base=0.01)
    queue.put(JobStarted("j1", NOW))
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(scheduler, lambda: None, stop))
    await asyncio.sleep(0.3)
    stop.set()
    await task
    assert scheduler.delivered == [] and queue.pending == [JobStarted("j1", NOW)]


async def test_flush_gives_up_after_its_timeout_and_keeps_the_report():
    scheduler = FakeScheduler()
    scheduler.outcomes = [Unreachable("down")] * 100
    store = MemoryStore()
    queue = ReportQueue(store, retry_base=0.01)
    queue.put(JobStarted("j1", NOW))
    await queue.flush(scheduler, "n1", timeout=0.2)
    assert store.saved == [JobStarted("j1", NOW)]


async def test_a_report_is_sent_without_waiting_for_the_disk_and_an_answered_one_is_never_synced():
    store = MemoryStore()

    class Checking(FakeScheduler):
        async def send_batch(self, node_id, reports):  # type: ignore[no-untyped-def]
            assert store.durable == [], "waited for the disk before sending"
            return await super().send_batch(node_id, reports)

    queue = ReportQueue(store, retry_base=0.01)
    queue.put(JobStarted("j1", NOW))
    queue.put(JobFinished("j1", NOW, exit_code=0))
    await drain(queue, Checking())
    assert store.syncs == 0 and store.saved == []


async def test_reports_the_scheduler_does_not_take_are_synced_before_the_retry():
    store, scheduler = MemoryStore(), FakeScheduler()
    scheduler.outcomes = [Unreachable("down"), None]
    queue = ReportQueue(store, retry_base=0.05)
    started = JobStarted("j1", NOW)
    queue.put(started)
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(scheduler, lambda: "n1", stop))
    async with asyncio.timeout(5):
        while not store.syncs:
            await asyncio.sleep(0.005)
    assert store.durable == [started] and scheduler.delivered == []
    while queue.pending:
        await asyncio.sleep(0.005)
    stop.set()
    await task
    assert scheduler.delivered == [started]


async def test_kept_returns_at_the_acknowledgement_without_an_fsync():
    store, scheduler = MemoryStore(), FakeScheduler()
    queue = ReportQueue(store, retry_base=0.01)
    report = JobFinished("j1", NOW, exit_code=0)
    queue.put(report)
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(scheduler, lambda: "n1", stop))
    async with asyncio.timeout(5):
        await queue.kept(report, patience=60)
    assert scheduler.delivered == [report] and store.syncs == 0
    stop.set()
    await task


async def test_kept_syncs_a_report_left_unanswered_past_its_patience():
    store = MemoryStore()
    queue = ReportQueue(store)  # nothing sends: no answer ever comes
    report = JobFinished("j1", NOW, exit_code=0)
    queue.put(report)
    await queue.kept(report, patience=0.02)
    assert store.durable == [report] and store.syncs == 1
    await queue.kept(JobStarted("not-queued", NOW), patience=60)  # not pending: nothing to wait for


async def test_durable_syncs_once_for_everything_put_and_not_again_without_news():
    store = MemoryStore()
    queue = ReportQueue(store)
    for n in range(5):
        queue.put(JobStarted(f"j{n}", NOW))
    await asyncio.gather(*(queue.durable() for _ in range(4)))
    assert store.syncs == 1 and store.durable == store.saved
    await queue.durable()
    assert store.syncs == 1
    queue.put(JobStarted("j9", NOW))
    await queue.durable()
    assert store.syncs == 2 and JobStarted("j9", NOW) in store.durable
