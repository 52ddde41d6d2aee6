"""Projects in the engine: per-project shares order work inside an organization, per-project caps hold
a project's jobs with reason project_cap (and nobody else's)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from services.scheduler.domain.engine import Allocation, NodeShare, Policy, ProjectCap

from .builders import (
    ORG_A,
    ORG_B,
    T0,
    USER_1,
    USER_2,
    code,
    gpu_id,
    job,
    node,
    node_id,
    placed_ns,
    run,
    snapshot,
)

P1, P2 = UUID(int=0x501), UUID(int=0x502)


def held_by_project(n: int, on_node: int, gpus: range, project: UUID, org: UUID = ORG_A) -> Allocation:
    ids = tuple(gpu_id(on_node, i) for i in gpus)
    return Allocation(
        UUID(int=2_000_000 + n),
        org,
        project,
        USER_1,
        (NodeShare(node_id(on_node), ids, ("a100-80gb",) * len(ids)),),
        T0 - timedelta(hours=1),
    )


def test_a_project_below_its_share_is_served_before_a_higher_priority_flood_of_another():
    # P1 already holds 2 GPUs; P2 holds none: P2's low-priority jobs go first, then they alternate.
    snap = snapshot(
        [node(1, gpus=4)],
        [job(i, project=P1, priority=100) for i in range(10)]
        + [job(20 + i, project=P2, priority=0) for i in range(2)],
        [held_by_project(90, 1, range(2), P1)],
    )
    assert placed_ns(run(snap)) == {20, 21}


def test_project_shares_weigh_the_projects_of_one_organization():
    # P1 weighs 3, P2 1: of 4 free GPUs P1 gets 3 and P2 1, whatever the priorities.
    jobs = [job(i, project=P1, priority=0) for i in range(10)] + [
        job(20 + i, project=P2, priority=100) for i in range(10)
    ]
    snap = snapshot([node(1, gpus=4)], jobs)
    result = run(snap, Policy(project_shares={(ORG_A, P1): 3.0}))
    assert len(placed_ns(result) & set(range(10))) == 3
    assert len(placed_ns(result) & set(range(20, 30))) == 1


def test_a_project_gpu_cap_holds_its_jobs_with_reason_project_cap_and_lets_others_run():
    snap = snapshot(
        [node(1, gpus=8)],
        [job(1, project=P1, gpus=2), job(2, project=P1, gpus=2), job(3, project=P2, gpus=2), job(4, gpus=1)],
        [held_by_project(90, 1, range(1), P1)],
    )
    result = run(snap, Policy(project_caps={(ORG_A, P1): ProjectCap(max_gpus=3)}))
    assert placed_ns(result) == {1, 3, 4}
    assert code(result, 2) == "project_cap"
    w = result.waiting(job(2, project=P1, gpus=2).id)
    assert w is not None
    assert (
        w.reason.message
        == "your project's cap of 3 GPUs is reached: the project holds 3 and this job needs 2"
    )


def test_a_project_job_cap_counts_every_user_of_the_project_and_this_cycles_placements():
    jobs = [job(1, project=P1, user=USER_1), job(2, project=P1, user=USER_2), job(3, project=P1, user=USER_1)]
    result = run(
        snapshot([node(1)], jobs), Policy(project_caps={(ORG_A, P1): ProjectCap(max_running_jobs=2)})
    )
    assert len(placed_ns(result)) == 2
    waiting = [n for n in (1, 2, 3) if code(result, n) is not None]
    assert len(waiting) == 1 and code(result, waiting[0]) == "project_cap"
    assert (
        result.waiting(job(waiting[0]).id).reason.message == "your project's cap of 2 running jobs is reached"
    )


def test_a_cap_names_one_organizations_project_only():
    # the same project id in another organization is another project: not capped
    jobs = [job(1, project=P1), job(2, org=ORG_B, project=P1)]
    result = run(
        snapshot([node(1)], jobs), Policy(project_caps={(ORG_A, P1): ProjectCap(max_running_jobs=0)})
    )
    assert placed_ns(result) == {2}
    assert code(result, 1) == "project_cap"


def test_a_released_allocation_gives_its_project_room_back():
    snap = snapshot([node(1)], [job(1, project=P1)], [held_by_project(90, 1, range(1), P1)])
    policy = Policy(project_caps={(ORG_A, P1): ProjectCap(max_running_jobs=1)})
    assert code(run(snap, policy), 1) == "project_cap"
    snap.release(UUID(int=2_000_090))
    assert placed_ns(run(snap, policy)) == {1}
