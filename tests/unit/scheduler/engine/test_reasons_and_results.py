"""Never-fits rejects, estimated starts, positions, held jobs, determinism, the snapshot's bookkeeping."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from services.scheduler.domain.engine import Policy, never_fits

from .builders import (
    A100,
    ORG_A,
    ORG_B,
    T0,
    USER_2,
    code,
    gpu_id,
    job,
    job_id,
    node,
    placed_ns,
    run,
    running,
    snapshot,
)

FLEET = [node(1), node(2), node(3, gpus=4, gpu_type="l40s-48gb", memory=49152, cpu=32, ram=256 * 1024)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": 16}, "no node of this fleet has 16 GPUs"),
        ({"memory": 200_000}, "no GPU of this fleet has 195.3 GB of memory"),
        ({"gpu_type": "h200-141gb"}, "no node of this fleet has a h200-141gb GPU"),
        ({"gpu_type": "l40s-48gb", "gpus": 8}, "no node of this fleet has 8 l40s-48gb"),
        ({"cpu": 1000}, "no node of this fleet with 1 GPUs also has 1000 CPU cores and 0 GB of RAM"),
        ({"gpus": 8, "nodes": 3}, "the gang needs 3 nodes with 8 GPUs each; this fleet has 2 such nodes"),
        ({"gpus": 0}, "a job needs at least one node and one GPU per node"),
    ],
)
def test_never_fitting_jobs_are_rejected_with_the_reason(kwargs, message):
    result = run(snapshot(FLEET, [job(1, **kwargs)]))
    assert [(r.job_id, r.reason.code, r.reason.message) for r in result.rejections] == [
        (job_id(1), "never_fits", message)
    ]
    assert never_fits(snapshot(FLEET), job(1, **kwargs).shape, (None,)) == message


def test_with_no_node_registered_a_job_waits_for_capacity_and_is_never_rejected():
    # A fleet still registering its first nodes (or whose nodes all left): admission at submit lets
    # the job in, and the cycle must not reject it, or call it never fitting, meanwhile.
    for policy in (Policy(), Policy(reject_never_fitting=False)):
        result = run(snapshot([], [job(1), job(2, gpu_type="h200-141gb", gpus=8)]), policy)
        assert not result.rejections and result.decisions == ()
        assert code(result, 1) == code(result, 2) == "no_capacity"
    assert never_fits(snapshot([]), job(1).shape, (None,)) is None
    # One node registers: admission judges again (the answers are per fleet version).
    assert (
        never_fits(snapshot([node(1)]), job(1, gpus=16).shape, (None,)) == "no node of this fleet has 16 GPUs"
    )


def test_without_the_admission_flag_never_fitting_jobs_wait_and_say_why():
    result = run(snapshot(FLEET, [job(1, gpus=16)]), Policy(reject_never_fitting=False))
    assert result.decisions == ()
    assert code(result, 1) == "never_fits"


def test_another_orgs_dedicated_node_that_does_not_lend_does_not_count_for_admission():
    snap = snapshot(
        [node(1, gpus=4), node(2, dedicated_to=ORG_B)], [job(1, ORG_A, gpus=8), job(2, ORG_B, gpus=8)]
    )
    result = run(snap)
    assert [r.job_id for r in result.rejections] == [job_id(1)]
    assert placed_ns(result) == {2}


def test_estimated_start_is_when_enough_time_limits_end_on_a_fitting_node():
    snap = snapshot(
        [node(1), node(2)],
        [job(1, gpus=8), job(2, gpus=4, priority=10), job(3, gpus=8, nodes=2, priority=0)],
        [
            running(90, 1, range(4), ends_in=3600),
            running(91, 1, range(4, 8), ends_in=7200),
            running(92, 2, range(8), ends_in=None),
        ],
    )
    result = run(snap)
    assert result.waiting(job_id(1)).estimated_start == T0 + timedelta(hours=2)
    assert result.waiting(job_id(2)).estimated_start == T0 + timedelta(hours=1)
    assert result.waiting(job_id(3)).estimated_start is None  # node 2's job has no time limit


def test_estimated_start_counts_what_this_cycle_placed():
    snap = snapshot([node(1, gpus=1)], [job(1, time_limit=600, priority=90), job(2, priority=10)])
    result = run(snap)
    assert placed_ns(result) == {1}
    w = result.waiting(job_id(2))
    assert w is not None and w.reason.code == "behind_own_jobs"
    assert w.estimated_start == T0 + timedelta(seconds=600)


def test_position_counts_the_orgs_waiting_jobs_ahead_across_classes_and_held_jobs_say_so():
    jobs = [
        job(1, priority=90, gpus=8, gpu_type=A100),  # its own class
        job(2, priority=95),
        job(3, priority=80, gpus=8, gpu_type=A100),
        job(4, priority=85),
        job(5, held=True),
        job(6, ORG_B, priority=100, user=USER_2),
    ]
    snap = snapshot([node(1)], jobs, [running(90, 1, range(8), ORG_A)])
    result = run(snap)
    positions = {n: result.waiting(job_id(n)).position for n in (1, 2, 3, 4)}
    assert positions == {2: 1, 1: 2, 4: 3, 3: 4}
    assert [jid for jid, _ in result.waiting_in_order(ORG_A)] == [job_id(n) for n in (2, 1, 4, 3)]
    assert result.waiting(job_id(6)).position == 1  # counted among its own organization only
    held = result.waiting(job_id(5))
    assert held is not None and held.reason.code == "held" and held.position is None


def test_a_cycle_is_deterministic_whatever_order_the_snapshot_was_built_in():
    nodes = [node(i, labels={"rack": f"r{i % 2}"}) for i in range(6)]
    jobs = [
        job(
            i,
            org=[ORG_A, ORG_B][i % 2],
            gpus=[1, 2, 4, 8][i % 4],
            nodes=1 + (i % 7 == 0),
            priority=i % 5 * 20,
        )
        for i in range(80)
    ]
    allocs = [running(900 + i, i, [0], ORG_A, ends_in=100 * i) for i in range(3)]
    results = []
    for seed in range(3):
        rng = random.Random(seed)
        shuffled_nodes, shuffled_jobs = nodes[:], jobs[:]
        rng.shuffle(shuffled_nodes)
        rng.shuffle(shuffled_jobs)
        results.append(run(snapshot(shuffled_nodes, shuffled_jobs, allocs)))
    assert results[0].decisions == results[1].decisions == results[2].decisions
    assert results[0].outcomes == results[1].outcomes == results[2].outcomes
    assert results[0].placements  # the case is not empty


def test_the_snapshot_refuses_a_double_booking_and_frees_on_release():
    snap = snapshot([node(1, gpus=2)], [job(1, gpus=2)], [running(90, 1, [0])])
    with pytest.raises(ValueError):
        snap.allocate(running(91, 1, [0]))
    assert run(snap).placements == []
    snap.release(job_id(90))
    result = run(snap)
    assert placed_ns(result) == {1}
    for d in result.decisions:
        snap.apply(d, T0)
    assert snap.jobs == {} and snap.used == {(ORG_A, A100): 2}
    assert snap.nodes[node(1).id.int].free == {(A100, 81920): []}


def test_updating_a_node_keeps_what_running_jobs_hold():
    snap = snapshot([node(1, gpus=2)], [job(1)], [running(90, 1, [1])])
    snap.update_node(node(1, gpus=2, unhealthy=[0]))
    assert run(snap).placements == []
    snap.update_node(node(1, gpus=2))
    [p] = run(snap).placements
    assert p.allocations[0].gpu_ids == (gpu_id(1, 0),)


def test_priority_change_and_hold_are_updates_of_a_queued_job():
    snap = snapshot([node(1, gpus=1)], [job(1, priority=90), job(2, priority=10)])
    snap.update_job(job(2, priority=100))
    assert placed_ns(run(snap)) == {2}
    snap.update_job(job(2, priority=100, held=True))
    assert placed_ns(run(snap)) == {1}


def test_waiting_in_order_gives_each_job_its_own_classes_reason():
    # one organization, three classes waiting for three different reasons
    jobs = [job(1, gpus=8), job(2, gpus=16), job(3, gpus=2, gpu_type="l40s-48gb", user=USER_2)]
    snap = snapshot([node(1)], jobs, [running(90, 1, range(8), ORG_A)])
    result = run(snap, Policy(reject_never_fitting=False))
    in_order = list(result.waiting_in_order(ORG_A))
    assert {jid for jid, _ in in_order} == {job_id(n) for n in (1, 2, 3)}
    for jid, w in in_order:
        assert w == result.waiting(jid)
    assert {w.reason.code for _, w in in_order} == {"no_capacity", "never_fits"}
