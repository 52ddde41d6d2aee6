"""The time-limit warning (``gpufleet.job.time_limit_warning``): when an attempt is due (a table over the
job's life), the leader's heap of due warnings, and the leader sending each attempt's warning once,
fenced, across a take-over. No I/O: the scheduler's fakes, with their clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scheduler.adapters import events
from services.scheduler.domain.model import GpuAllocation, Job, JobStatus, Outcome
from services.scheduler.domain.spec import job_spec
from services.scheduler.domain.time_limit_warnings import DueWarnings
from services.scheduler.service_layer import commands, handlers
from services.scheduler.service_layer.scheduling import Deposed, Scheduler
from shared.contracts import jobs as contract
from shared.events import decode
from shared.time_limit import warning_after

from .fakes import fake_dependencies
from .test_handlers import NODE, add_gpus, inventory_gpu, submit

T0 = datetime(2025, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def job(limit: int | None) -> Job:
    return Job.submit(
        job_spec(command="train", gpu_count=1, time_limit_seconds=limit),
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=None,
        at=T0,
    )


def place(j: Job, at: datetime) -> None:
    j.schedule(uuid.uuid4(), (GpuAllocation(uuid.uuid4(), 0, "h100-80gb", Decimal("1")),), at)


def running(limit: int | None) -> Job:
    j = job(limit)
    _started(j)
    return j


def lost(j: Job, at: datetime) -> None:
    assert j.requeue("lost: node gone", at, max_attempts=3)


def _queued(j: Job) -> None:
    pass


def _scheduled(j: Job) -> None:
    place(j, T0)


def _started(j: Job) -> None:
    place(j, T0)
    j.start(T0 + S, T0 + S)


def _warned(j: Job) -> None:
    _started(j)
    assert j.warn_time_limit(T0 + 541 * S)


def _ended_before(j: Job) -> None:
    _started(j)
    j.finish(Outcome(exit_code=0), None, T0 + 100 * S)


def _cancelled_while_queued(j: Job) -> None:
    j.cancel(T0 + S)


def _being_cancelled(j: Job) -> None:
    _started(j)
    assert not j.cancel(T0 + 100 * S)  # the agent stops it; it still runs meanwhile


def _requeued_not_restarted(j: Job) -> None:
    _started(j)
    lost(j, T0 + 10 * S)


def _requeued_after_its_warning_and_started_again(j: Job) -> None:
    _warned(j)
    lost(j, T0 + 550 * S)
    place(j, T0 + 600 * S)
    j.start(T0 + 601 * S, T0 + 601 * S)


@pytest.mark.parametrize(
    ("limit", "life", "due"),
    [
        (None, _started, None),  # no limit: never warned
        (600, _started, T0 + S + 540 * S),  # a minute before the end, from its recorded start
        (600, _queued, None),  # nothing runs
        (600, _scheduled, None),  # not started yet: the start it is counted from is unknown
        (600, _warned, None),  # warned once: never again for this attempt
        (600, _ended_before, None),  # ended before it was due
        (600, _cancelled_while_queued, None),
        (600, _being_cancelled, None),  # stopped anyway: the agent does not warn it either
        (600, _requeued_not_restarted, None),  # its attempt was lost; the next one has not started
        (600, _requeued_after_its_warning_and_started_again, T0 + 601 * S + 540 * S),  # a new attempt
    ],
)
def test_when_an_attempt_is_due_to_be_warned(limit, life, due):
    j = job(limit)
    life(j)
    assert j.time_limit_warning_due == due


def test_a_running_job_is_due_at_the_agents_moment_from_its_recorded_start():
    assert running(None).time_limit_warning_due is None
    assert running(600).time_limit_warning_due == T0 + S + 540 * S  # a minute before the end
    assert running(100).time_limit_warning_due == T0 + S + 90 * S  # 90% of a short limit
    for limit in (1, 2, 10, 100, 600, 3600, 86400):
        assert running(limit).time_limit_warning_due == T0 + S + timedelta(seconds=warning_after(limit))


def test_the_warning_is_an_event_of_the_running_job_not_a_status_change():
    j = running(600)
    history = list(j.history)
    j.events.clear()
    assert not j.warn_time_limit(T0 + 540 * S)  # a second early
    assert j.warn_time_limit(T0 + 541 * S)
    assert not j.warn_time_limit(T0 + 542 * S)  # once
    [change] = j.events
    assert (change.kind, change.previous_status, change.job.status) == (
        "time_limit_warning",
        JobStatus.RUNNING,
        JobStatus.RUNNING,
    )
    assert change.reason == "time limit of 600 s: the job is stopped in 60 s (SIGTERM, then SIGKILL)"
    assert change.stops_at == T0 + 601 * S and change.job.time_limit_warned == 1
    assert j.history == history  # no history entry: the timeline is of status changes

    envelope = events.envelope(change)
    decoded = decode(envelope.headers(), envelope.value(), contract.EVENT_TYPES)
    assert decoded.type == contract.JOB_TIME_LIMIT_WARNING
    assert contract.JOB_TIME_LIMIT_WARNING not in contract.TERMINAL_EVENTS
    data = decoded.data
    assert data.previous_status == "running" and data.job.status == "running"
    assert data.stops_at == T0 + 601 * S and data.reason == change.reason


def test_a_late_warning_says_nothing_is_left():
    j = running(10)
    assert j.warn_time_limit(T0 + 30 * S)
    assert j.events[-1].reason == "time limit of 10 s: the job is stopped in 0 s (SIGTERM, then SIGKILL)"


def test_older_events_decode_without_the_stop_time():
    assert (
        contract.JobEventV1.model_validate({"job": events.snapshot(running(5)).model_dump()}).stops_at is None
    )


# --- the leader's heap ---------------------------------------------------------------------------


def test_due_warnings_come_out_in_due_order_once_and_follow_changes():
    due = DueWarnings()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    due.set(a, T0 + 30 * S)
    due.set(b, T0 + 10 * S)
    due.set(c, T0 + 20 * S)
    due.set(b, T0 + 10 * S)  # the same row read again: no second entry
    assert due.next_due() == T0 + 10 * S and len(due) == 3
    due.set(c, None)  # ended before it was due
    due.set(a, T0 + 5 * S)  # a new attempt started earlier than the old one's due time
    assert due.pop_due(T0) == []
    assert due.pop_due(T0 + 25 * S) == [a, b]
    assert due.pop_due(T0 + 100 * S) == [] and due.next_due() is None and len(due) == 0


def test_the_heap_is_compacted_when_stale_entries_outnumber_the_live_ones():
    due = DueWarnings()
    keep = uuid.uuid4()
    due.set(keep, T0 + 10**6 * S)
    for i in range(1000):  # long limits on jobs that end early
        j = uuid.uuid4()
        due.set(j, T0 + (i + 1) * S)
        due.set(j, None)
    assert len(due._heap) <= 2 * len(due) + 64
    assert due.next_due() == T0 + 10**6 * S and due.pop_due(T0 + 10**6 * S) == [keep]


# --- the leader sends them -------------------------------------------------------------------------


async def _running(deps, org, limit: int | None, leader: Scheduler) -> Job:
    job = await handlers.submit_job(submit(org, time_limit_seconds=limit), deps)
    report = await leader.step()
    assert report is not None and [j.id for j in report.placed] == [job.id]
    await handlers.report_job_started(commands.ReportJobStarted(node_id=str(NODE), job_id=str(job.id)), deps)
    return job


def warnings_of(uow, job: Job) -> list:
    return [e for e in uow.store.outbox if e.job.id == job.id and e.kind == "time_limit_warning"]


async def test_the_leader_warns_each_attempt_once_when_it_is_due():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    leader = Scheduler(deps, "leader")
    limited = await _running(deps, org, 100, leader)
    unlimited = await _running(deps, org, None, leader)
    assert (await leader.step()).warned == []  # learns it runs; due at 90 s
    assert leader.next_warning_in() == pytest.approx(90, abs=1)
    uow.clock.tick(85)
    assert (await leader.step()).warned == [] and warnings_of(uow, limited) == []
    uow.clock.tick(6)
    report = await leader.step()
    assert [j.id for j in report.warned] == [limited.id]
    [event] = warnings_of(uow, limited)
    assert event.job.attempt == 1 and event.reason.startswith(
        "time limit of 100 s: the job is stopped in 8 s"
    )
    assert leader.next_warning_in() is None
    uow.clock.tick(5)
    assert (await leader.step()).warned == [] and len(warnings_of(uow, limited)) == 1
    assert warnings_of(uow, unlimited) == []

    # lost with its node: the next attempt is warned on its own, from its own start
    await handlers.report_job_finished(
        commands.ReportJobFinished(
            node_id=str(NODE), job_id=str(limited.id), error_message="lost: agent gone", attempt=1
        ),
        deps,
    )
    report = await leader.step()
    assert [j.id for j in report.placed] == [limited.id]
    await handlers.report_job_started(
        commands.ReportJobStarted(node_id=str(NODE), job_id=str(limited.id), attempt=2), deps
    )
    await leader.step()
    uow.clock.tick(91)
    assert [j.id for j in (await leader.step()).warned] == [limited.id]
    assert [e.job.attempt for e in warnings_of(uow, limited)] == [1, 2]


async def test_the_start_of_a_job_with_a_limit_wakes_the_loop_and_one_without_does_not():
    deps, _, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    leader = Scheduler(deps, "leader")
    for limit, wakes in ((None, False), (100, True)):
        job = await handlers.submit_job(submit(org, time_limit_seconds=limit), deps)
        await leader.step()
        deps.wakeup.clear()
        start = commands.ReportJobStarted(node_id=str(NODE), job_id=str(job.id))
        await handlers.handle(commands.ReportJobs((start,)), deps)
        assert deps.wakeup.is_set() is wakes, limit


async def test_a_job_that_ends_before_it_is_due_is_not_warned():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0))
    org = uuid.uuid4()
    leader = Scheduler(deps, "leader")
    limited = await _running(deps, org, 100, leader)
    await leader.step()
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(limited.id), exit_code=0), deps
    )
    await leader.step()
    assert leader.next_warning_in() is None
    uow.clock.tick(200)
    assert (await leader.step()).warned == [] and warnings_of(uow, limited) == []


async def test_a_leader_that_takes_over_warns_late_once_and_a_deposed_one_not_at_all():
    deps, uow, _ = fake_dependencies()
    await add_gpus(deps, inventory_gpu(0), inventory_gpu(1))
    org = uuid.uuid4()
    first = Scheduler(deps, "first")
    a = await _running(deps, org, 100, first)
    b = await _running(deps, org, 300, first)
    await first.step()

    uow.clock.tick(95)  # a came due while first stalled past its lease: second takes over
    second = Scheduler(deps, "second")
    report = await second.step()
    assert report is not None and [j.id for j in report.warned] == [a.id]  # late, once
    first.renewed_at = float("inf")  # first does not know it was deposed
    with pytest.raises(Deposed):
        await first.step()
    assert len(warnings_of(uow, a)) == 1

    uow.clock.tick(200)  # b comes due; second restarts (a new tenure, rebuilt from the store)
    await second.give_up()
    third = Scheduler(deps, "third")
    assert [j.id for j in (await third.step()).warned] == [b.id]
    again = Scheduler(deps, "fourth")
    await third.give_up()
    assert (await again.step()).warned == []
    assert (len(warnings_of(uow, a)), len(warnings_of(uow, b))) == (1, 1)
