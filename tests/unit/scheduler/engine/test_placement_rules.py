"""Best fit, gangs (all-or-nothing, fabric preference, ranks), CPU/RAM, health."""

from __future__ import annotations

from services.scheduler.domain.engine import Policy

from .builders import (
    A100,
    ORG_A,
    ORG_B,
    code,
    gpu_id,
    job,
    node,
    node_id,
    placed,
    placed_ns,
    run,
    running,
    snapshot,
)


def test_best_fit_prefers_the_node_left_with_fewest_free_gpus():
    snap = snapshot([node(1), node(2)], [job(1, gpus=2)], [running(90, 2, range(6))])
    [p] = run(snap).placements
    assert p.allocations[0].node_id == node_id(2)
    assert p.allocations[0].gpu_ids == (gpu_id(2, 6), gpu_id(2, 7))


def test_best_fit_prefers_less_wasted_memory_then_lower_node_id():
    snap = snapshot(
        [
            node(1, memory=81920),
            node(2, gpu_type="a100-40gb", memory=40960),
            node(3, gpu_type="a100-40gb", memory=40960),
        ],
        [job(1, memory=30000)],
    )
    [p] = run(snap).placements
    assert p.allocations[0].node_id == node_id(2)


def test_unhealthy_gpus_are_never_handed_out():
    snap = snapshot([node(1, gpus=2, unhealthy=[0])], [job(1), job(2)])
    result = run(snap)
    assert placed(result)[job(1).id].allocations[0].gpu_ids == (gpu_id(1, 1),)
    assert code(result, 2) in {"behind_own_jobs", "no_capacity"}


def test_cpu_and_ram_count_against_the_node():
    snap = snapshot([node(1, cpu=16, ram=65536)], [job(1, cpu=10), job(2, cpu=10), job(3, ram=60000)])
    result = run(snap)
    assert placed_ns(result) == {1, 3}
    assert code(result, 2) == "behind_own_jobs"  # it fitted before job 1 took the cores
    busy = snapshot([node(1, cpu=16)], [job(2, cpu=10)], [running(90, 1, [0], cpu=10)])
    w = run(busy).waiting(job(2).id)
    assert w is not None and w.reason.message == "no node has 1 free GPU and 10 free CPU cores"


def test_single_node_jobs_land_on_one_node():
    snap = snapshot([node(1, gpus=4), node(2, gpus=4)], [job(1, gpus=6)])
    result = run(snap)
    assert result.placements == []
    assert result.rejections[0].reason.message == "no node of this fleet has 6 GPUs"


FABRIC = [
    node(1, labels={"nvlink_domain": "d1", "rack": "r1"}),
    node(2, labels={"nvlink_domain": "d2", "rack": "r1"}),
    node(3, labels={"nvlink_domain": "d3", "rack": "r2"}),
    node(4, labels={"nvlink_domain": "d3", "rack": "r2"}),
]


def test_a_gang_prefers_nodes_of_one_nvlink_domain_and_gets_ranks():
    snap = snapshot(FABRIC, [job(1, gpus=8, nodes=2)])
    [p] = run(snap).placements
    assert [a.node_id for a in p.allocations] == [node_id(3), node_id(4)]
    assert [a.rank for a in p.allocations] == [0, 1]
    assert p.world_size == 2


def test_a_gang_falls_back_to_one_rack_then_to_any_nodes():
    snap = snapshot(FABRIC, [job(1, gpus=8, nodes=2)], [running(90, 4, [0])])
    [p] = run(snap).placements
    assert {a.node_id for a in p.allocations} == {node_id(1), node_id(2)}  # rack r1
    snap = snapshot(FABRIC, [job(1, gpus=8, nodes=2)], [running(90, 4, [0]), running(91, 2, [0])])
    [p] = run(snap).placements
    assert {a.node_id for a in p.allocations} == {node_id(1), node_id(3)}  # no shared label left


def test_a_gang_is_all_or_nothing_and_does_not_block_smaller_work():
    snap = snapshot(
        FABRIC,
        [job(1, ORG_A, gpus=8, nodes=3, priority=100), job(2, ORG_B, gpus=1)],
        [running(90, 4, [0]), running(91, 3, [0])],
    )
    result = run(snap)
    assert placed_ns(result) == {2}
    w = result.waiting(job(1).id)
    assert w is not None and w.reason.code == "gang_no_capacity"
    assert w.reason.message.startswith("the gang needs 3 nodes that each have 8 free GPUs")


def test_a_gang_uses_one_gpu_kind_and_spans_distinct_nodes():
    snap = snapshot(
        [node(1, gpus=4), node(2, gpus=4), node(3, gpus=4, gpu_type="l40s-48gb", memory=49152)],
        [job(1, gpus=4, nodes=2)],
    )
    [p] = run(snap).placements
    assert len({a.node_id for a in p.allocations}) == 2
    assert {a.gpu_type for a in p.allocations} == {A100} or {a.gpu_type for a in p.allocations} == {
        "l40s-48gb"
    }


def test_fabric_labels_are_policy():
    snap = snapshot(FABRIC, [job(1, gpus=8, nodes=2)])
    [p] = run(snap, Policy(fabric_labels=())).placements
    assert [a.node_id for a in p.allocations] == [node_id(1), node_id(2)]


# -- jobs naming an image: nodes with a container runtime only ---------------------------------------
def test_an_image_job_lands_only_on_a_node_with_a_container_runtime():
    # node 1 is the better fit by every other rule (fewest GPUs left); only node 2 runs containers
    fleet = [node(1, gpus=1), node(2, gpus=8, container_runtime=True)]
    snap = snapshot(fleet, [job(1, container=True), job(2)])
    result = run(snap)
    assert placed(result)[job(1).id].allocations[0].node_id == node_id(2)
    assert placed(result)[job(2).id].allocations[0].node_id == node_id(1)  # others may still use both


def test_an_image_job_waits_for_a_runtime_node_with_room_and_says_so():
    fleet = [node(1, gpus=8), node(2, gpus=2, container_runtime=True)]
    snap = snapshot(fleet, [job(1, container=True)], [running(90, 2, [0, 1])])
    result = run(snap)
    assert result.placements == []
    w = result.waiting(job(1).id)
    assert w is not None and w.reason.code == "no_capacity"
    assert w.reason.message == "no node with a container runtime has 1 free GPU"


def test_an_image_job_on_a_fleet_without_a_runtime_is_refused_with_the_reason():
    result = run(snapshot([node(1), node(2)], [job(1, container=True)]))
    assert result.placements == []
    assert result.rejections[0].reason.message == (
        "the job names an image and no node of this fleet has a container runtime"
    )
    small = run(
        snapshot([node(1), node(2, gpus=2, container_runtime=True)], [job(1, gpus=4, container=True)])
    )
    assert small.rejections[0].reason.message == "no node of this fleet with a container runtime has 4 GPUs"


def test_an_image_gang_uses_runtime_nodes_only():
    fleet = [
        node(1, labels={"nvlink_domain": "d1"}),
        node(2, labels={"nvlink_domain": "d1"}),
        node(3, labels={"nvlink_domain": "d2"}, container_runtime=True),
        node(4, labels={"nvlink_domain": "d3"}, container_runtime=True),
    ]
    [p] = run(snapshot(fleet, [job(1, gpus=8, nodes=2, container=True)])).placements
    assert {a.node_id for a in p.allocations} == {node_id(3), node_id(4)}
    three = run(snapshot(fleet, [job(2, gpus=8, nodes=3, container=True)]))
    assert three.rejections[0].reason.message == (
        "the gang needs 3 nodes with 8 GPUs each; this fleet has 2 such nodes with a container runtime"
    )
