"""Preemption through the service: the cycle's Preempt applied (fenced), the agent told to stop the
victim, the victim requeued (not failed) when its agent reports it stopped, the lender placed after."""

from __future__ import annotations

import dataclasses
import uuid

from services.scheduler.domain.engine import Policy, Quota
from services.scheduler.domain.model import JobStatus
from services.scheduler.entrypoints.agent_api import assignment_message
from services.scheduler.service_layer import commands, handlers
from services.scheduler.service_layer.options import SchedulingOptions

from .fakes import fake_dependencies, schedule_round
from .test_handlers import NODE, add_gpus, inventory_gpu, submit

ORG_A, ORG_B = uuid.UUID(int=0xA0), uuid.UUID(int=0xB0)
H100 = "h100-80gb"


def lent_one_gpu(**kw):
    deps, uow, _ = fake_dependencies()
    policy = Policy(
        reject_never_fitting=False, quotas={(ORG_A, H100): Quota(1), (ORG_B, H100): Quota(0)}, **kw
    )
    return dataclasses.replace(deps, options=SchedulingOptions(policy=policy, max_attempts=2)), uow


async def get(deps, org, job):
    return await handlers.get_job(commands.GetJob(organization_id=org, job_id=str(job.id)), deps)


async def finished(deps, job, attempt, **kw):
    await handlers.report_job_finished(
        commands.ReportJobFinished(node_id=str(NODE), job_id=str(job.id), attempt=attempt, **kw), deps
    )


async def test_a_borrowed_job_is_stopped_requeued_and_the_lender_placed_once_it_stopped():
    deps, uow = lent_one_gpu()
    await add_gpus(deps, inventory_gpu(0))
    borrower = await handlers.submit_job(submit(ORG_B), deps)
    [placed] = await schedule_round(deps)
    assert placed.id == borrower.id
    await handlers.report_job_started(
        commands.ReportJobStarted(node_id=str(NODE), job_id=str(borrower.id)), deps
    )

    lender = await handlers.submit_job(submit(ORG_A), deps)
    assert await schedule_round(deps) == []  # the borrower still holds the GPU
    victim = await get(deps, ORG_B, borrower)
    assert victim.status is JobStatus.RUNNING and victim.preempted_at is not None
    assert not victim.cancel_requested  # not the tenant's cancel
    [on_node] = await handlers.get_assignments(commands.GetAssignments(node_id=str(NODE)), deps)
    assert assignment_message(on_node, NODE).cancel_requested  # the agent stops it like a cancel
    waiting = await get(deps, ORG_A, lender)
    assert waiting.pending is not None and waiting.pending.code == "reclaiming"
    assert "1 borrowed job is stopping" in waiting.pending.message
    assert str(ORG_B) not in waiting.pending.message
    assert await schedule_round(deps) == []  # nothing more while it stops
    assert uow.store.jobs[borrower.id].preempted_at == victim.preempted_at

    # the agent stopped it (SIGTERM, grace, SIGKILL) and reports it as it reports a cancel
    await finished(deps, borrower, 1, cancelled=True)
    requeued = await get(deps, ORG_B, borrower)
    assert requeued.status is JobStatus.QUEUED and requeued.attempt == 2
    assert requeued.preempted_at is None and requeued.preemptions == 1
    assert requeued.history[-1].reason == "requeued as attempt 2: preempted: capacity reclaimed by its lender"
    events = [e for e in uow.store.outbox if e.job.id == borrower.id]
    assert events[-1].kind == "requeued"
    ended = events[-1].ended_attempt
    assert ended is not None and ended.attempt == 1 and len(ended.allocation) == 1  # credited by billing

    [placed] = await schedule_round(deps)
    assert placed.id == lender.id
    again = await get(deps, ORG_B, borrower)
    assert again.status is JobStatus.QUEUED and again.pending is not None
    assert again.pending.code == "quota_exhausted"

    # the lender done, the borrower runs again; its preemption did not use up one of its 2 attempts
    await finished(deps, lender, 1, exit_code=0)
    [placed] = await schedule_round(deps)
    assert placed.id == borrower.id and placed.attempt == 2
    await finished(deps, borrower, 2, error_message="lost: the agent restarted while the job ran")
    assert (await get(deps, ORG_B, borrower)).status is JobStatus.QUEUED  # lost once: requeued


async def test_a_victim_that_ends_by_itself_or_is_cancelled_ends_as_it_would_have():
    deps, _ = lent_one_gpu()
    await add_gpus(deps, inventory_gpu(0))
    borrower = await handlers.submit_job(submit(ORG_B), deps)
    await schedule_round(deps)
    await handlers.submit_job(submit(ORG_A), deps)
    await schedule_round(deps)
    assert (await get(deps, ORG_B, borrower)).preempted_at is not None
    await finished(deps, borrower, 1, exit_code=0)  # it finished before the stop reached it
    assert (await get(deps, ORG_B, borrower)).status is JobStatus.SUCCEEDED


async def test_the_operator_can_turn_reclaiming_off():
    deps, _ = lent_one_gpu(reclaim_lent_capacity=False)
    await add_gpus(deps, inventory_gpu(0))
    borrower = await handlers.submit_job(submit(ORG_B), deps)
    await schedule_round(deps)
    lender = await handlers.submit_job(submit(ORG_A), deps)
    await schedule_round(deps)
    assert (await get(deps, ORG_B, borrower)).preempted_at is None
    waiting = await get(deps, ORG_A, lender)
    assert waiting.pending is not None and waiting.pending.code == "no_capacity"


async def test_a_job_that_opted_out_of_requeue_is_not_preempted():
    deps, _ = lent_one_gpu()
    await add_gpus(deps, inventory_gpu(0))
    borrower = await handlers.submit_job(submit(ORG_B, no_requeue=True), deps)
    await schedule_round(deps)
    await handlers.submit_job(submit(ORG_A), deps)
    await schedule_round(deps)
    assert (await get(deps, ORG_B, borrower)).preempted_at is None


async def test_a_job_preempted_as_often_as_the_bound_runs_to_its_end():
    from services.scheduler.domain.views import MAX_PREEMPTIONS

    deps, uow = lent_one_gpu()
    await add_gpus(deps, inventory_gpu(0))
    borrower = await handlers.submit_job(submit(ORG_B), deps)
    stored = next(j for j in uow.store.jobs.values() if j.id == borrower.id)
    stored.preemptions = stored.attempt = MAX_PREEMPTIONS  # stopped that often already
    stored.attempt += 1
    await schedule_round(deps)
    await handlers.submit_job(submit(ORG_A), deps)
    await schedule_round(deps)
    assert (await get(deps, ORG_B, borrower)).preempted_at is None
