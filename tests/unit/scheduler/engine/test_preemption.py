"""Preemption: taking lent capacity back from jobs that run on borrowed GPUs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from services.scheduler.domain.engine import Allocation, NodeShare, Policy, Preempt, Quota, Usage
from services.scheduler.domain.engine.preemption import PREEMPTED_REASON

from .builders import (
    A100,
    ORG_A,
    ORG_B,
    ORG_C,
    T0,
    USER_1,
    code,
    gpu_id,
    job,
    job_id,
    node,
    node_id,
    placed_ns,
    run,
    running,
    snapshot,
)


def victims(result) -> list[int]:
    return [d.job_id.int - 2_000_000 for d in result.preemptions]


def borrowed(n, on_node, gpus, org=ORG_B, priority=50, started_min_ago=60):
    return replace(
        running(n, on_node, gpus, org),
        priority=priority,
        started_at=T0 - timedelta(minutes=started_min_ago),
    )


ONE_GPU_LENT = Policy(quotas={(ORG_A, A100): Quota(1), (ORG_B, A100): Quota(0)})


def test_the_lender_gets_its_gpu_back_and_waits_until_the_borrower_stopped():
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A)], [borrowed(90, 1, [0])])
    result = run(snap, ONE_GPU_LENT)
    assert victims(result) == [90]
    (p,) = result.preemptions
    assert p == Preempt(job_id(90), ORG_B, PREEMPTED_REASON, job_id(1))
    assert placed_ns(result) == set()  # nothing placed onto what the preemption frees
    w = result.waiting(job_id(1))
    assert w is not None and w.reason.code == "reclaiming"
    assert w.reason.message == "your organization's lent GPUs are being reclaimed: 1 borrowed job is stopping"
    assert str(ORG_B) not in w.reason.message
    assert result.reclaims == {job_id(1): (ORG_A, A100, 1)}

    # next cycle: the victim still runs (its agent has not reported): no second victim, same reason
    for d in result.decisions:
        snap.apply(d, T0)
    snap.reclaims = dict(result.reclaims)
    again = run(snap, ONE_GPU_LENT)
    assert again.preemptions == [] and placed_ns(again) == set()
    assert code(again, 1) == "reclaiming"

    # the victim stopped and is queued again (a new attempt): the lender is placed, not the borrower,
    # even when fair share would serve the borrower first
    snap.reclaims = dict(again.reclaims)
    snap.release(job_id(90))
    snap.add_job(job(90, ORG_B, age=100))
    snap.record_usage(ORG_A, None, USER_1, Usage(gpu_s=1e7), T0, 7 * 86400.0)
    after = run(snap, ONE_GPU_LENT)
    assert placed_ns(after) == {1}
    assert code(after, 90) == "quota_exhausted"
    assert after.preemptions == []


def test_without_the_reservation_the_borrower_would_have_taken_the_freed_gpu():
    # the same last step, without the previous cycle's reclaims: fair share serves B (A used a lot)
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A), job(90, ORG_B, age=100)])
    snap.record_usage(ORG_A, None, USER_1, Usage(gpu_s=1e7), T0, 7 * 86400.0)
    assert placed_ns(run(snap, ONE_GPU_LENT)) == {90}


def test_reclaiming_is_an_operator_setting():
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A)], [borrowed(90, 1, [0])])
    result = run(snap, replace(ONE_GPU_LENT, reclaim_lent_capacity=False))
    assert result.preemptions == []
    assert code(result, 1) == "no_capacity"


def test_no_preemption_when_the_waiting_job_would_borrow_itself():
    # A holds its nominal 1 already: a second job of A would borrow, so it only waits
    snap = snapshot([node(1, gpus=2)], [job(1, ORG_A)], [running(80, 1, [0], ORG_A), borrowed(90, 1, [1])])
    result = run(snap, ONE_GPU_LENT)
    assert result.preemptions == []


def test_a_job_within_its_own_organizations_nominal_is_never_a_victim():
    # B: nominal 1, runs 2 (borrows 1); only one of B's jobs may be stopped, whatever A asks
    snap = snapshot(
        [node(1, gpus=2)],
        [job(1, ORG_A), job(2, ORG_A)],
        [borrowed(90, 1, [0], started_min_ago=50), borrowed(91, 1, [1], started_min_ago=10)],
    )
    policy = Policy(quotas={(ORG_A, A100): Quota(2), (ORG_B, A100): Quota(1)})
    result = run(snap, policy)
    assert victims(result) == [91]  # the most recently started of equal priority
    assert code(result, 1) == "reclaiming"


def test_victims_lowest_priority_first_then_most_recently_started():
    snap = snapshot(
        [node(1, gpus=3)],
        [job(1, ORG_A)],
        [
            borrowed(90, 1, [0], priority=10, started_min_ago=5),
            borrowed(91, 1, [1], priority=0, started_min_ago=50),
            borrowed(92, 1, [2], priority=0, started_min_ago=40),
        ],
    )
    policy = Policy(quotas={(ORG_A, A100): Quota(3)})
    assert victims(run(snap, policy)) == [92]


def test_no_more_victims_than_needed_on_the_node():
    # A holds 3, may hold 8; B borrows a 1-GPU job (lowest priority) and a 4-GPU job. A asks 4: the
    # 4-GPU job alone gives the room, so the 1-GPU job taken first is spared.
    snap = snapshot(
        [node(1, gpus=8)],
        [job(1, ORG_A, gpus=4)],
        [
            replace(running(80, 1, range(3), ORG_A)),
            borrowed(90, 1, [3], priority=10),
            borrowed(91, 1, range(4, 8), priority=20),
        ],
    )
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(8)}))
    assert victims(result) == [91]


def test_the_node_with_the_fewest_victims_wins():
    snap = snapshot(
        [node(1, gpus=2), node(2, gpus=2)],
        [job(1, ORG_A, gpus=2)],
        [
            borrowed(90, 1, [0], priority=0),
            borrowed(91, 1, [1], priority=0),
            borrowed(92, 2, [0, 1], priority=90),
        ],
    )
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(4)}))
    assert victims(result) == [92]


def test_a_gang_victim_is_stopped_as_a_whole_and_frees_every_member():
    gang = Allocation(
        job_id(90),
        ORG_B,
        None,
        USER_1,
        (
            NodeShare(node_id(1), (gpu_id(1, 0),), (A100,)),
            NodeShare(node_id(2), (gpu_id(2, 0),), (A100,)),
        ),
        T0 - timedelta(hours=1),
    )
    snap = snapshot([node(1, gpus=1), node(2, gpus=1)], [job(1, ORG_A), job(2, ORG_A)], [gang])
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(2)}))
    assert victims(result) == [90]  # one decision; both A jobs count on its two GPUs
    assert code(result, 1) == "reclaiming" and code(result, 2) == "reclaiming"
    assert set(result.reclaims) == {job_id(1), job_id(2)}


def test_a_dedicated_node_lent_to_another_organization_comes_back():
    snap = snapshot(
        [node(1, gpus=2, dedicated_to=ORG_A)],
        [job(1, ORG_A, gpus=2)],
        [borrowed(90, 1, [0], org=ORG_C), borrowed(91, 1, [1], org=ORG_B)],
    )
    result = run(snap, Policy(dedicated_lending_limit=2))
    assert sorted(victims(result)) == [90, 91]
    w = result.waiting(job_id(1))
    assert w is not None and "2 borrowed jobs are stopping" in w.reason.message


def test_a_job_that_opted_out_of_requeue_is_never_a_victim():
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A)], [replace(borrowed(90, 1, [0]), preemptible=False)])
    result = run(snap, ONE_GPU_LENT)
    assert result.preemptions == []
    assert code(result, 1) == "no_capacity"


def test_a_borrowed_job_runs_its_grace_period_before_it_is_stopped():
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A)], [borrowed(90, 1, [0], started_min_ago=1)])
    policy = replace(ONE_GPU_LENT, preemption_grace_s=300)
    result = run(snap, policy)
    assert result.preemptions == []
    w = result.waiting(job_id(1))
    assert w is not None and w.reason.code == "reclaiming"
    assert "once they have run 300 s" in w.reason.message
    later = run(snap, policy, now=T0 + timedelta(minutes=5))
    assert victims(later) == [90]


def test_nobody_borrowing_costs_no_preemption_phase():
    snap = snapshot([node(1, gpus=1)], [job(1, ORG_A)], [running(80, 1, [0], ORG_A)])
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(2)}))
    assert result.preemptions == [] and result.reclaims == {}
    assert code(result, 1) == "no_capacity"
