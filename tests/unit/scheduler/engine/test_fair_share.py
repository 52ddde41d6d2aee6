"""Fair share between organizations and inside one: decayed usage counts, priority does not cross."""

from __future__ import annotations

from uuid import UUID

import pytest

from services.scheduler.domain.engine import Policy, Usage, decayed
from services.scheduler.domain.engine.fairshare import mean_life

from .builders import (
    A100,
    ORG_A,
    ORG_B,
    T0,
    USER_1,
    USER_2,
    code,
    job,
    node,
    placed_ns,
    run,
    running,
    snapshot,
)

DAY = 86400.0
POLICY = Policy()
TAU = mean_life(POLICY.half_life_s)


def gpu_average(gpus: float) -> Usage:
    """Usage equal to holding ``gpus`` GPUs forever (in the engine's unit: GPU-seconds x mean life)."""
    return Usage(gpu_s=gpus * TAU)


@pytest.mark.parametrize(
    ("elapsed", "half_life", "expected"),
    [(0.0, DAY, 100.0), (DAY, DAY, 50.0), (2 * DAY, DAY, 25.0), (-5.0, DAY, 100.0), (3 * DAY, 0.0, 100.0)],
)
def test_decayed_halves_every_half_life(elapsed, half_life, expected):
    assert decayed(100.0, elapsed, half_life) == pytest.approx(expected)


def test_an_org_below_its_share_is_served_first_whatever_the_priorities():
    # one free GPU; A holds 7 and asks at priority 100, B holds none and asks at priority 0
    snap = snapshot(
        [node(1)],
        [job(1, ORG_A, priority=100), job(2, ORG_B, priority=0)],
        [running(90, 1, range(7), ORG_A)],
    )
    result = run(snap)
    assert placed_ns(result) == {2}
    assert code(result, 1) == "fair_share"
    assert "fair share" in result.waiting(job(1).id).reason.message


def test_decayed_usage_counts_so_it_is_not_round_robin():
    # A held 2 GPUs on average lately; both queue four 1-GPU jobs on 4 free GPUs: B gets 3, A gets 1
    snap = snapshot(
        [node(1, gpus=4)], [job(i, ORG_A) for i in range(4)] + [job(10 + i, ORG_B) for i in range(4)]
    )
    snap.record_usage(ORG_A, None, USER_1, gpu_average(2), T0, POLICY.half_life_s)
    result = run(snap)
    assert placed_ns(result) == {0, 10, 11, 12}


def test_old_usage_counts_less():
    # A's usage was 4 GPUs on average, but one half-life ago: it counts 2, as in the case above
    snap = snapshot(
        [node(1, gpus=4)], [job(i, ORG_A) for i in range(4)] + [job(10 + i, ORG_B) for i in range(4)]
    )
    snap.record_usage(
        ORG_A, None, USER_1, gpu_average(4), T0.replace(day=1) - _half_life(), POLICY.half_life_s
    )
    result = run(snap)
    assert len(placed_ns(result) & {0, 1, 2, 3}) == 1


def _half_life():
    from datetime import timedelta

    return timedelta(seconds=POLICY.half_life_s)


def test_shares_weigh_organizations():
    # B has 3 shares to A's 1: of 8 GPUs B gets 6
    snap = snapshot([node(1)], [job(i, ORG_A) for i in range(8)] + [job(10 + i, ORG_B) for i in range(8)])
    result = run(snap, Policy(org_shares={ORG_B: 3.0}))
    assert len(placed_ns(result) & set(range(10, 18))) == 6


def test_gpu_type_weights_make_an_expensive_gpu_count_more():
    # A holds 2 h100 (weight 4 = 8 units); B holds 4 a100 (weight 1 = 4 units): B is served first
    snap = snapshot(
        [node(1, gpus=4), node(2, gpus=4, gpu_type="h100-80gb"), node(3, gpus=1)],
        [job(1, ORG_A), job(2, ORG_B)],
        [running(90, 2, range(2), ORG_A, gpu_type="h100-80gb"), running(91, 1, range(4), ORG_B)],
    )
    policy = Policy(gpu_type_weights={"h100-80gb": 4.0})
    result = run(snap, policy)
    placed = {p.job_id: p for p in result.placements}
    # both fit; the order of placement shows who was first: B took the best-fitting node (node 3)
    assert placed[job(2).id].allocations[0].node_id == node(3).id
    # without weights A (2 units) is below B (4 units) and takes node 3
    unweighted = {p.job_id: p for p in run(snap).placements}
    assert unweighted[job(1).id].allocations[0].node_id == node(3).id


def test_priority_orders_jobs_inside_an_organization():
    snap = snapshot(
        [node(1, gpus=2)],
        [job(1, priority=10), job(2, priority=90), job(3, priority=50)],
    )
    result = run(snap)
    assert placed_ns(result) == {2, 3}
    assert code(result, 1) == "behind_own_jobs"


def test_same_priority_older_first():
    snap = snapshot([node(1, gpus=1)], [job(1, age=10), job(2, age=100), job(3, age=50)])
    assert placed_ns(run(snap)) == {2}


def test_inside_an_org_users_share_fairly_one_level_down():
    # USER_1 already holds 3 GPUs; USER_2 none; USER_1's jobs are at higher priority, USER_2 still first
    snap = snapshot(
        [node(1, gpus=4)],
        [job(1, user=USER_1, priority=100), job(2, user=USER_2, priority=1)],
        [running(90, 1, range(3), ORG_A, USER_1)],
    )
    assert placed_ns(run(snap)) == {2}


def test_projects_are_a_level_between_org_and_users():
    p1, p2 = UUID(int=0x501), UUID(int=0x502)
    snap = snapshot(
        [node(1, gpus=2)],
        [job(i, project=p1, priority=100) for i in range(3)]
        + [job(10 + i, project=p2, priority=0) for i in range(3)],
    )
    snap.record_usage(ORG_A, p1, USER_1, gpu_average(4), T0, POLICY.half_life_s)
    assert placed_ns(run(snap)) == {10, 11}


def test_a_flood_of_blocked_big_jobs_does_not_delay_another_orgs_small_job():
    # every node has one GPU busy, so A's 1,000 8-GPU jobs at priority 100 cannot start anywhere
    nodes = [node(i) for i in range(4)]
    busy = [running(900 + i, i, [0], ORG_A) for i in range(4)]
    flood = [job(i, ORG_A, priority=100, gpus=8, gpu_type=A100) for i in range(1000)]
    snap = snapshot(nodes, [*flood, job(5000, ORG_B, priority=0)], busy)
    result = run(snap)
    assert placed_ns(result) == {5000}
    assert code(result, 0) == "no_capacity"
    assert result.waiting(job(999).id).reason.message == "no node has 8 free a100-80gb"
    assert result.stats.capacity_searches <= 3  # the flood is one class, tried once


def test_a_flood_of_never_fitting_jobs_is_rejected_and_does_not_delay_others():
    flood = [job(i, ORG_A, priority=100, memory=200_000) for i in range(1001)]
    snap = snapshot([node(1)], [*flood, job(5000, ORG_B)])
    result = run(snap)
    assert placed_ns(result) == {5000}
    assert len(result.rejections) == 1001
