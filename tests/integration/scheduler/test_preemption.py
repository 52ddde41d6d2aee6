"""Preemption against the real database: a dedicated node lent to another organization comes back to
its owner. The victim is asked to stop in the leader's fenced transaction (a deposed leader's
preemption never applies), its agent is told to stop it, it is requeued as a new attempt when the
agent reports it stopped (the ended attempt on the requeued event, for billing's credit), and the
owner's job is placed only then."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from gpufleet.v1 import scheduler_pb2
from sqlalchemy import text

from services.scheduler.domain.engine import Policy
from services.scheduler.service_layer.scheduling import Deposed, Scheduler
from shared.contracts import jobs as contract

from .test_scheduler import outbox_events

pytestmark = pytest.mark.integration
MEMORY = 777_777  # MB: no other test's GPU has this much


async def _row(db, job_id: str):
    async with db.transaction(system=True) as s:
        return (
            await s.execute(
                text("SELECT status, attempt, preempted_at, preemptions FROM jobs WHERE id = :j"),
                {"j": job_id},
            )
        ).one()


async def test_a_lent_dedicated_gpu_is_reclaimed_through_a_fenced_preemption(harness):
    org_a, key_a = harness.tenant()
    org_b, key_b = harness.tenant()
    node = uuid.uuid4()
    # A's dedicated node, lent to others (1 GPU); its memory, which the jobs ask for, keeps them off
    # the nodes other tests left (the lending limit below lends those too)
    await harness.add_gpus(org_a, node, 1, memory=MEMORY)
    # Jobs other tests left queued would borrow the lent GPU too: hold them for this test.
    async with harness.db.transaction(system=True) as s:
        await s.execute(
            text("UPDATE jobs SET held = true WHERE status = 'queued' AND organization_id <> ALL(:o)"),
            {"o": [org_a, org_b]},
        )
    policy = Policy(reject_never_fitting=False, dedicated_lending_limit=1)
    deps = dataclasses.replace(harness.deps, options=dataclasses.replace(harness.deps.options, policy=policy))
    leader = Scheduler(deps, "integration-leader")

    request = scheduler_pb2.SubmitJobRequest(command="sleep 600", gpu_count=1, gpu_memory_mb=MEMORY)
    borrowed = await harness.jobs.SubmitJob(request, metadata=key_b)
    report = await leader.step()
    assert report is not None and [str(j.id) for j in report.placed] == [borrowed.id]
    await harness.agents.ReportJobStarted(
        scheduler_pb2.ReportJobStartedRequest(node_id=str(node), job_id=borrowed.id), metadata=harness.agent
    )

    owner = await harness.jobs.SubmitJob(request, metadata=key_a)
    # A leader whose token is stale (deposed) applies nothing of its cycle.
    assert leader.token is not None
    token = leader.token
    leader.token, leader.renewed_at = token - 1, time.monotonic()
    with pytest.raises(Deposed):
        await leader.step()
    assert (await _row(harness.db, borrowed.id)).preempted_at is None
    leader.token, leader.state, leader.renewed_at = token, None, time.monotonic()

    report = await leader.step()
    assert report is not None
    assert report.placed == []
    assert [str(j.id) for j in report.preempted] == [borrowed.id]
    row = await _row(harness.db, borrowed.id)
    assert row.status == "running" and row.preempted_at is not None
    assignments = await harness.agents.GetAssignments(
        scheduler_pb2.GetAssignmentsRequest(node_id=str(node)), metadata=harness.agent
    )
    [victim] = [a for a in assignments.assignments if a.job_id == borrowed.id]
    assert victim.cancel_requested  # the agent stops it as it stops a cancelled job
    waiting = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=owner.id), metadata=key_a)
    assert waiting.status == "queued" and waiting.pending_reason.code == "reclaiming"
    assert str(org_b) not in waiting.pending_reason.message
    report = await leader.step()  # still stopping: nothing placed, nobody else preempted
    assert report is not None and report.placed == [] and report.preempted == []

    await harness.agents.ReportJobFinished(
        scheduler_pb2.ReportJobFinishedRequest(
            node_id=str(node), job_id=borrowed.id, cancelled=True, attempt=1
        ),
        metadata=harness.agent,
    )
    row = await _row(harness.db, borrowed.id)
    assert (row.status, row.attempt, row.preempted_at, row.preemptions) == ("queued", 2, None, 1)
    events = await outbox_events(harness.db, borrowed.id)
    kind, requeued = events[-1]
    assert kind == contract.JOB_REQUEUED
    assert requeued.reason == "requeued as attempt 2: preempted: capacity reclaimed by its lender"
    assert requeued.ended_attempt is not None and requeued.ended_attempt.attempt == 1
    assert len(requeued.ended_attempt.allocation) == 1  # billing credits the preempted attempt

    report = await leader.step()
    assert report is not None and [str(j.id) for j in report.placed] == [owner.id]
    again = await harness.jobs.GetJob(scheduler_pb2.GetJobRequest(id=borrowed.id), metadata=key_b)
    assert again.status == "queued" and again.attempt == 2
    assert "preempted: capacity reclaimed by its lender" in again.history[-1].reason
