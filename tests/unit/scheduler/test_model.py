"""The job life cycle: allowed transitions, no-ops for late reports, refusals, recorded events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scheduler.domain.model import (
    GpuAllocation,
    InvalidTransition,
    Job,
    JobAlreadyFinished,
    JobStatus,
    Outcome,
)
from services.scheduler.domain.spec import job_spec
from shared.errors import ErrorCode

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
NODE = uuid.uuid4()


def new_job(gpu_count: int = 1) -> Job:
    spec = job_spec(command="python train.py", gpu_count=gpu_count, gpu_memory_mb=1024)
    return Job.submit(spec, job_id=uuid.uuid4(), organization_id=uuid.uuid4(), user_id=None, at=T0)


def allocation(n: int = 1) -> tuple[GpuAllocation, ...]:
    return tuple(GpuAllocation(uuid.uuid4(), i, "h100-80gb", Decimal("2.99")) for i in range(n))


def scheduled_job(gpu_count: int = 1) -> Job:
    job = new_job(gpu_count)
    job.schedule(NODE, allocation(gpu_count), T0 + timedelta(seconds=1))
    return job


def kinds(job: Job) -> list[str]:
    return [e.kind for e in job.events]


def test_submit_queues_and_records_submitted():
    job = new_job()
    assert job.status is JobStatus.QUEUED and job.priority == 50
    assert kinds(job) == ["submitted"]
    assert job.events[0].previous_status is None
    assert [h.status for h in job.new_history] == [JobStatus.QUEUED]


def test_happy_path_to_succeeded_with_snapshots_per_event():
    job = scheduled_job(2)
    assert job.status is JobStatus.SCHEDULED and job.node_id == NODE and len(job.gpu_ids) == 2
    assert job.start(T0 + timedelta(seconds=2), now=T0 + timedelta(seconds=3))
    assert job.finish(
        Outcome(exit_code=0, output_tail="done"), T0 + timedelta(seconds=9), now=T0 + timedelta(seconds=10)
    )
    assert job.status is JobStatus.SUCCEEDED and job.exit_code == 0
    assert kinds(job) == ["submitted", "scheduled", "started", "succeeded"]
    # each event carries the job as it was right after that change
    assert [e.job.status for e in job.events] == ["queued", "scheduled", "running", "succeeded"]
    assert (
        job.events[1].job.scheduled_at == T0 + timedelta(seconds=1) and job.events[1].job.started_at is None
    )
    assert [e.previous_status for e in job.events[1:]] == ["queued", "scheduled", "running"]
    assert job.finished_at == T0 + timedelta(seconds=9)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome(exit_code=3), JobStatus.FAILED),
        (Outcome(exit_code=None, error_message="lost: agent restarted"), JobStatus.FAILED),
        (Outcome(exit_code=137, cancelled=True), JobStatus.CANCELLED),
        (Outcome(exit_code=0), JobStatus.SUCCEEDED),
    ],
)
def test_finish_outcomes(outcome, status):
    job = scheduled_job()
    job.start(None, now=T0 + timedelta(seconds=2))
    assert job.finish(outcome, None, now=T0 + timedelta(seconds=5))
    assert job.status is status
    assert job.finished_at == T0 + timedelta(seconds=5)  # no report time: now


def test_failed_without_exit_code_keeps_the_reason():
    job = scheduled_job()
    job.finish(Outcome(error_message="could not start: no such file"), None, now=T0 + timedelta(seconds=2))
    assert job.status is JobStatus.FAILED and job.exit_code is None
    assert job.new_history[-1].reason == "could not start: no such file"


def test_a_scheduled_job_can_finish_without_starting():
    job = scheduled_job()
    assert job.finish(Outcome(exit_code=1), None, now=T0 + timedelta(seconds=2))
    assert job.status is JobStatus.FAILED and job.started_at is None


def test_finished_at_is_clamped_between_allocation_and_now():
    job = scheduled_job()
    job.start(T0 + timedelta(seconds=5), now=T0 + timedelta(seconds=6))
    early = T0 - timedelta(hours=1)  # agent clock behind
    job.finish(Outcome(exit_code=0), early, now=T0 + timedelta(seconds=10))
    assert job.finished_at == T0 + timedelta(seconds=5)  # not before it started
    late = scheduled_job()
    late.finish(Outcome(exit_code=0), T0 + timedelta(days=1), now=T0 + timedelta(seconds=10))
    assert late.finished_at == T0 + timedelta(seconds=10)  # not in the future


def test_started_at_is_clamped_too():
    job = scheduled_job()
    job.start(T0 - timedelta(hours=1), now=T0 + timedelta(seconds=5))
    assert job.started_at == job.scheduled_at


def test_duplicate_and_late_reports_are_no_ops():
    job = scheduled_job()
    assert job.start(None, now=T0 + timedelta(seconds=2))
    assert not job.start(None, now=T0 + timedelta(seconds=3))
    assert job.finish(Outcome(exit_code=0), None, now=T0 + timedelta(seconds=4))
    before = (job.status, job.finished_at, len(job.events))
    assert not job.finish(Outcome(exit_code=1), None, now=T0 + timedelta(seconds=5))
    assert not job.start(None, now=T0 + timedelta(seconds=6))
    assert (job.status, job.finished_at, len(job.events)) == before


def test_queued_job_cannot_start_finish_or_be_scheduled_twice():
    job = new_job()
    with pytest.raises(InvalidTransition):
        job.start(None, now=T0)
    with pytest.raises(InvalidTransition):
        job.finish(Outcome(exit_code=0), None, now=T0)
    job.schedule(NODE, allocation(), T0)
    with pytest.raises(InvalidTransition):
        job.schedule(NODE, allocation(), T0)


def test_schedule_needs_exactly_gpu_count_distinct_gpus():
    job = new_job(2)
    with pytest.raises(InvalidTransition):
        job.schedule(NODE, allocation(1), T0)
    one = allocation(1)[0]
    with pytest.raises(InvalidTransition):
        job.schedule(NODE, (one, one), T0)
    assert job.status is JobStatus.QUEUED


def test_cancel_queued_is_immediate():
    job = new_job()
    assert job.cancel(T0 + timedelta(seconds=1), "changed my mind") is True
    assert job.status is JobStatus.CANCELLED and job.finished_at == T0 + timedelta(seconds=1)
    assert kinds(job)[-1] == "cancelled" and job.events[-1].reason == "changed my mind"


@pytest.mark.parametrize("running", [False, True])
def test_cancel_on_a_node_only_requests_it(running):
    job = scheduled_job()
    if running:
        job.start(None, now=T0 + timedelta(seconds=2))
    events = len(job.events)
    assert job.cancel(T0 + timedelta(seconds=3)) is False
    assert job.cancel_requested and job.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)
    assert len(job.events) == events  # nothing to announce until the agent stops it
    first = job.cancel_requested_at
    assert job.cancel(T0 + timedelta(seconds=4)) is False  # repeating is harmless
    assert job.cancel_requested_at == first
    job.finish(Outcome(cancelled=True), None, now=T0 + timedelta(seconds=5))
    assert job.status is JobStatus.CANCELLED and kinds(job)[-1] == "cancelled"


@pytest.mark.parametrize("outcome", [Outcome(exit_code=0), Outcome(exit_code=1), Outcome(cancelled=True)])
def test_terminal_jobs_refuse_cancel(outcome):
    job = scheduled_job()
    job.finish(outcome, None, now=T0 + timedelta(seconds=2))
    with pytest.raises(JobAlreadyFinished) as err:
        job.cancel(T0 + timedelta(seconds=3))
    assert err.value.code == ErrorCode.FAILED_PRECONDITION


def test_cancelled_queued_job_refuses_a_second_cancel():
    job = new_job()
    job.cancel(T0)
    with pytest.raises(JobAlreadyFinished):
        job.cancel(T0)


def test_output_is_trimmed_and_nul_free():
    job = scheduled_job()
    job.finish(
        Outcome(exit_code=0, output_tail="a\x00b" + "x" * 20_000, error_message="e" * 5000),
        None,
        now=T0 + timedelta(seconds=2),
    )
    assert job.output_tail is not None and "\x00" not in job.output_tail
    assert len(job.output_tail) == 16_000 and job.output_tail.endswith("x")  # the tail is kept
    assert job.error_message is not None and len(job.error_message) == 2_000
