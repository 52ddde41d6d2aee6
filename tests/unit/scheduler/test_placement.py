"""Placement: best fit, all-or-nothing on one node, filters, queue order, no GPU given twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.scheduler.domain.placement import FreeGpu, JobRequest, place, queue_order

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ORG = uuid.uuid4()
NODE_A = uuid.UUID(int=1)
NODE_B = uuid.UUID(int=2)
NODE_C = uuid.UUID(int=3)


def gpu(
    node: uuid.UUID,
    index: int,
    memory: int = 81920,
    gpu_type: str = "h100-80gb",
    org: uuid.UUID | None = None,
    price: str = "2.99",
) -> FreeGpu:
    return FreeGpu(
        gpu_id=uuid.uuid4(),
        node_id=node,
        device_index=index,
        gpu_type=gpu_type,
        memory_total_mb=memory,
        cost_per_hour=Decimal(price),
        organization_id=org,
    )


def job(
    count: int = 1,
    memory: int = 0,
    gpu_type: str | None = None,
    priority: int = 50,
    age: int = 0,
    org: uuid.UUID = ORG,
) -> JobRequest:
    return JobRequest(
        job_id=uuid.uuid4(),
        organization_id=org,
        gpu_count=count,
        gpu_memory_mb=memory,
        gpu_type=gpu_type,
        priority=priority,
        created_at=T0 - timedelta(seconds=age),
    )


def test_best_fit_picks_the_node_and_gpus_that_waste_least_memory():
    big = [gpu(NODE_A, 0, 81920), gpu(NODE_A, 1, 81920)]
    small = [gpu(NODE_B, 0, 24576), gpu(NODE_B, 1, 40960)]
    j = job(memory=20000)
    [p] = place([j], big + small)
    assert p.node_id == NODE_B
    assert [g.memory_total_mb for g in p.gpus] == [24576]


def test_within_a_node_the_smallest_fitting_gpus_are_taken():
    gpus = [gpu(NODE_A, 0, 81920), gpu(NODE_A, 1, 40960), gpu(NODE_A, 2, 24576), gpu(NODE_A, 3, 40960)]
    [p] = place([job(count=2, memory=30000)], gpus)
    assert [g.device_index for g in p.gpus] == [1, 3]


def test_equal_waste_prefers_the_node_left_with_fewest_free_gpus_then_lowest_id():
    two = [gpu(NODE_C, 0), gpu(NODE_C, 1)]
    four = [gpu(NODE_A, i) for i in range(4)]
    [p] = place([job()], four + two)
    assert p.node_id == NODE_C
    same = [gpu(NODE_B, 0), gpu(NODE_A, 0)]
    [p] = place([job()], same)
    assert p.node_id == NODE_A


def test_multi_gpu_job_needs_all_its_gpus_on_one_node():
    spread = [gpu(NODE_A, 0), gpu(NODE_B, 0), gpu(NODE_C, 0)]
    assert place([job(count=2)], spread) == []
    together = [*spread, gpu(NODE_B, 1)]
    [p] = place([job(count=2)], together)
    assert p.node_id == NODE_B and len(p.gpus) == 2
    assert len({g.gpu_id for g in p.gpus}) == 2


def test_memory_type_and_organization_filters():
    other_org = uuid.uuid4()
    gpus = [
        gpu(NODE_A, 0, 16384),  # too small
        gpu(NODE_B, 0, 81920, gpu_type="a100-80gb"),  # wrong type
        gpu(NODE_C, 0, 81920, org=other_org),  # someone else's dedicated GPU
    ]
    assert place([job(memory=20000, gpu_type="h100-80gb")], gpus) == []
    mine = gpu(NODE_C, 1, 81920, org=ORG)
    [p] = place([job(memory=20000, gpu_type="h100-80gb")], [*gpus, mine])
    assert p.gpus == (mine,)
    # the other organization may use its own GPU and the shared pool, never ours
    [p] = place([job(org=other_org, memory=20000, gpu_type="h100-80gb")], [*gpus, mine])
    assert p.gpus[0].organization_id == other_org


def test_memory_exactly_equal_fits():
    g = gpu(NODE_A, 0, 40960)
    [p] = place([job(memory=40960)], [g])
    assert p.gpus == (g,)


def test_higher_priority_first_then_older_first():
    g = [gpu(NODE_A, 0)]
    low_old, high_new = job(priority=10, age=100), job(priority=90, age=0)
    [p] = place([low_old, high_new], g)
    assert p.job_id == high_new.job_id
    old, new = job(age=50), job(age=1)
    [p] = place([new, old], g)
    assert p.job_id == old.job_id
    assert [j.job_id for j in queue_order([new, high_new, low_old, old])] == [
        high_new.job_id,
        old.job_id,
        new.job_id,
        low_old.job_id,
    ]


def test_a_job_that_does_not_fit_is_skipped_and_later_jobs_still_run():
    gpus = [gpu(NODE_A, 0), gpu(NODE_A, 1)]
    huge, small = job(count=4, priority=90), job(count=1, priority=10)
    [p] = place([huge, small], gpus)
    assert p.job_id == small.job_id


def test_gpus_taken_earlier_in_the_round_are_not_offered_again():
    gpus = [gpu(NODE_A, i) for i in range(3)] + [gpu(NODE_B, 0)]
    jobs = [job(count=2, age=3), job(count=1, age=2), job(count=1, age=1), job(count=1, age=0)]
    placements = place(jobs, gpus)
    assert [p.job_id for p in placements] == [j.job_id for j in jobs[:3]]
    taken = [g.gpu_id for p in placements for g in p.gpus]
    assert len(taken) == len(set(taken)) == 4


def test_a_gpu_listed_twice_is_still_handed_out_once():
    g = gpu(NODE_A, 0)
    placements = place([job(age=1), job(age=0)], [g, g])
    assert len(placements) == 1


def test_nothing_free_or_nothing_queued():
    assert place([], [gpu(NODE_A, 0)]) == []
    assert place([job()], []) == []
