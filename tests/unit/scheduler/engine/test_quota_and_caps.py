"""Quotas (nominal, borrowing, lending), dedicated nodes as quota, per-user caps."""

from __future__ import annotations

import pytest

from services.scheduler.domain.engine import Policy, Quota, Usage, UserCap

from .builders import (
    A100,
    ORG_A,
    ORG_B,
    T0,
    USER_1,
    USER_2,
    code,
    job,
    job_id,
    node,
    placed_ns,
    run,
    running,
    snapshot,
)


@pytest.mark.parametrize(
    ("quota_a", "quota_b", "placed_of_a", "reason"),
    [
        # B lends all its idle nominal: A runs 6 of its 6 jobs (4 own + 2 borrowed)
        (Quota(4), Quota(4), 6, None),
        # A may borrow at most 1
        (Quota(4, borrowing_limit=1), Quota(4), 5, "quota_exhausted"),
        # B lends at most 1
        (Quota(4), Quota(4, lending_limit=1), 5, "quota_exhausted"),
        # nothing to borrow from
        (Quota(4), Quota(4, lending_limit=0), 4, "quota_exhausted"),
        # a borrowing limit of 0 keeps A at its nominal
        (Quota(2, borrowing_limit=0), Quota(6), 2, "quota_exhausted"),
    ],
)
def test_quota_borrowing_and_lending(quota_a, quota_b, placed_of_a, reason):
    snap = snapshot([node(1)], [job(i, ORG_A) for i in range(6)])
    policy = Policy(quotas={(ORG_A, A100): quota_a, (ORG_B, A100): quota_b})
    result = run(snap, policy)
    assert len(placed_ns(result)) == placed_of_a
    assert code(result, 5) == reason


def test_quota_message_says_what_the_org_holds_and_nothing_about_others():
    snap = snapshot([node(1), node(2)], [job(1, ORG_A)], [running(90, 1, range(8), ORG_A)])
    policy = Policy(quotas={(ORG_A, A100): Quota(8, borrowing_limit=0), (ORG_B, A100): Quota(8)})
    w = run(snap, policy).waiting(job(1).id)
    assert w is not None
    assert w.reason.code == "quota_exhausted"
    assert w.reason.message.startswith("your organization's quota for a100-80gb: 8/8 in use")
    assert str(ORG_B) not in w.reason.message


def test_an_org_within_its_nominal_is_not_limited_by_others_borrowing():
    # B borrowed A's idle quota; A's own nominal still admits A (the free GPUs are physical room)
    snap = snapshot(
        [node(1), node(2)],
        [job(1, ORG_A, gpus=4)],
        [running(90, 1, range(8), ORG_B), running(91, 2, range(4), ORG_B)],
    )
    policy = Policy(quotas={(ORG_A, A100): Quota(8), (ORG_B, A100): Quota(4)})
    assert placed_ns(run(snap, policy)) == {1}


def test_capacity_no_quota_covers_is_open_to_every_org():
    # 16 GPUs, only A has a (nominal 4) quota: B may borrow the 12 unassigned ones
    snap = snapshot([node(1), node(2)], [job(i, ORG_B) for i in range(14)])
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(4, lending_limit=0)}))
    assert len(placed_ns(result)) == 12
    assert code(result, 13) == "quota_exhausted"


def test_types_without_quota_are_an_open_pool():
    snap = snapshot(
        [node(1), node(2, gpu_type="l40s-48gb", memory=49152)], [job(i, ORG_B) for i in range(16)]
    )
    result = run(snap, Policy(quotas={(ORG_A, A100): Quota(8, lending_limit=0)}))
    # a100 is fully A's nominal and not lent; l40s has no quota at all
    assert len(placed_ns(result)) == 8
    assert all(p.allocations[0].gpu_type == "l40s-48gb" for p in result.placements)


def test_a_dedicated_node_is_its_owners_nominal_and_lent_only_within_its_limit():
    nodes = [node(1, dedicated_to=ORG_A), node(2)]
    snap = snapshot(nodes, [job(i, ORG_B) for i in range(12)] + [job(100 + i, ORG_A) for i in range(2)])
    result = run(snap)
    on_dedicated = {p.job_id for p in result.placements if p.allocations[0].node_id == nodes[0].id}
    # by default nothing of a dedicated node is lent
    assert {j.int - 2_000_000 for j in on_dedicated} == {100, 101}
    assert len(placed_ns(result) & set(range(12))) == 8
    assert code(result, 11) == "quota_exhausted"
    # with a lending limit of 2, B may hold 2 of the dedicated GPUs
    lent = run(snap, Policy(quotas={(ORG_A, A100): Quota(0, lending_limit=2)}))
    b_on_dedicated = [
        p for p in lent.placements if p.organization == ORG_B and p.allocations[0].node_id == nodes[0].id
    ]
    assert len(b_on_dedicated) == 2
    assert len(placed_ns(lent) & set(range(12))) == 10


def test_an_offline_dedicated_node_is_nobodys_quota_and_its_type_an_open_pool_again():
    # node 1 is dedicated to A and offline (decommissioned, or its agent went silent)
    queue = [job(n, ORG_B) for n in range(1, 4)]
    dedicated = run(snapshot([node(1, gpus=2, dedicated_to=ORG_A, unhealthy=(0, 1)), node(2, gpus=1)], queue))
    shared = run(snapshot([node(1, gpus=2, unhealthy=(0, 1)), node(2, gpus=1)], queue))
    # exactly as if the offline node were nobody's: no quota in any answer
    assert placed_ns(dedicated) == placed_ns(shared) == {1}
    assert [code(dedicated, n) for n in (2, 3)] == [code(shared, n) for n in (2, 3)]


def test_the_dedicated_owner_always_gets_its_node_back_before_others():
    nodes = [node(1, dedicated_to=ORG_A)]
    snap = snapshot(nodes, [job(1, ORG_B, priority=100), job(2, ORG_A, priority=0)])
    result = run(snap, Policy(dedicated_lending_limit=8))
    assert placed_ns(result) == {1, 2}


def test_per_user_cap_on_running_jobs():
    snap = snapshot([node(1)], [job(i, user=USER_1) for i in range(3)] + [job(10, user=USER_2)])
    result = run(snap, Policy(user_caps={ORG_A: UserCap(max_running_jobs=2)}))
    assert placed_ns(result) == {0, 1, 10}
    w = result.waiting(job(2).id)
    assert w is not None and (w.reason.code, w.reason.message) == (
        "user_cap",
        "per-user cap 2 running jobs reached",
    )


def test_per_user_cap_on_gpus_counts_what_the_user_already_holds():
    # USER_1 holds 1 GPU; cap 3: the 1-GPU job fits (2), the 2-GPU job would make 4
    snap = snapshot(
        [node(1)],
        [
            job(0, user=USER_1, priority=90),
            job(1, user=USER_1, gpus=2, priority=80),
            job(10, user=USER_2, gpus=3),
        ],
        [running(90, 1, [7], ORG_A, USER_1)],
    )
    result = run(snap, Policy(user_caps={ORG_A: UserCap(max_gpus=3)}))
    assert placed_ns(result) == {0, 10}
    w = result.waiting(job(1).id)
    assert w is not None
    assert w.reason.message == "per-user cap 3 GPUs reached: you hold 2 and this job needs 2"


def test_a_user_cap_override_beats_the_org_default():
    snap = snapshot([node(1)], [job(i, user=USER_1) for i in range(3)])
    policy = Policy(
        user_caps={ORG_A: UserCap(max_running_jobs=1)}, user_cap_overrides={(ORG_A, USER_1): UserCap(3)}
    )
    assert len(placed_ns(run(snap, policy))) == 3


def test_a_borrower_out_of_lending_room_does_not_block_the_owner_on_its_own_node():
    # B borrows the 2 GPUs A lends of its dedicated node, then its third job finds no room; A's job
    # of the same shape, tried later (A has used a lot), must still get A's own node: a borrower's
    # capacity failure on a pool that is limited for it says nothing about the owner
    nodes = [node(1, dedicated_to=ORG_A), node(2, unhealthy=range(8))]
    snap = snapshot(nodes, [job(i, ORG_B, user=USER_2) for i in range(3)] + [job(100, ORG_A)])
    policy = Policy(dedicated_lending_limit=2)
    snap.record_usage(ORG_A, None, USER_1, Usage(gpu_s=1e12), T0, policy.half_life_s)
    result = run(snap, policy)
    assert placed_ns(result) == {0, 1, 100}
    # What A lends is spent, and the rest of the fleet is down: no room to borrow (down GPUs are none).
    assert code(result, 2) == "quota_exhausted"


def test_down_gpus_are_no_room_to_borrow_so_a_reclaimed_gpu_goes_to_its_lender():
    # One healthy GPU of the type (A's nominal, which A's waiting job is reclaiming) and 15 down ones. B,
    # favoured by fair share, must not borrow it as "unassigned" capacity: the down GPUs are not room, so
    # B would take the lender's GPU and be preempted again, round after round.
    snap = snapshot(
        [node(1, unhealthy=range(1, 8)), node(2, unhealthy=range(8))], [job(1, ORG_B), job(100, ORG_A)]
    )
    snap.record_usage(ORG_A, None, USER_1, Usage(gpu_s=1e12), T0, Policy().half_life_s)
    snap.reclaims = {job_id(100): (ORG_A, A100, 1)}
    policy = Policy(quotas={(ORG_A, A100): Quota(1), (ORG_B, A100): Quota(0)})
    result = run(snap, policy)
    assert placed_ns(result) == {100}
    assert code(result, 1) == "quota_exhausted"
