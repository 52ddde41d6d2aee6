"""FleetService/ListNodes over gRPC and PostgreSQL: tenant visibility, GPUs per node, paging; and the
migration that took fleet's copy of allocations away."""

from __future__ import annotations

from uuid import uuid4

import grpc
import pytest
from gpufleet.v1 import fleet_pb2
from sqlalchemy import text

from shared.grpc import with_key

from .conftest import Fleet
from .test_registry import node_request

pytestmark = pytest.mark.integration


async def all_nodes(fleet: Fleet, key: str, limit: int = 0) -> list[fleet_pb2.Node]:
    nodes, cursor = [], ""
    while True:
        page = await fleet.inventory.ListNodes(
            fleet_pb2.ListNodesRequest(limit=limit, cursor=cursor), metadata=with_key(key)
        )
        nodes.extend(page.nodes)
        if not page.next_cursor:
            return nodes
        assert len(page.nodes) <= limit
        cursor = page.next_cursor


async def test_a_tenant_lists_the_shared_pool_and_its_own_nodes_never_anothers(fleet: Fleet) -> None:
    org_a, org_b = uuid4(), uuid4()
    shared = await fleet.join(
        node_request(models=("NVIDIA L4", "NVIDIA L4"), cpu_cores=32, ram_mb=131072, labels={"rack": "r1"})
    )
    mine = await fleet.join(node_request(models=("NVIDIA L4",), org=org_a))
    theirs = await fleet.join(node_request(models=("NVIDIA L4",), org=org_b))

    seen_a = {n.id: n for n in await all_nodes(fleet, fleet.identity.new_key(org_a), limit=2)}
    assert shared.node_id in seen_a and mine.node_id in seen_a and theirs.node_id not in seen_a
    assert all(not n.dedicated for n in seen_a.values() if n.id != mine.node_id)
    assert seen_a[mine.node_id].dedicated
    seen_b = {n.id for n in await all_nodes(fleet, fleet.identity.new_key(org_b))}
    assert theirs.node_id in seen_b and mine.node_id not in seen_b

    node = seen_a[shared.node_id]
    assert (node.status, node.cpu_cores, node.ram_mb, dict(node.labels)) == (
        "online",
        32,
        131072,
        {"rack": "r1"},
    )
    assert node.last_heartbeat.endswith("Z") and node.registered_at.endswith("Z")
    assert [(g.id, g.index, g.gpu_type, g.status, g.in_use) for g in node.gpus] == [
        (shared.gpus[0].gpu_id, 0, "l4", "available", False),
        (shared.gpus[1].gpu_id, 1, "l4", "available", False),
    ]


async def test_pages_do_not_repeat_or_skip_nodes_and_a_reregistered_node_keeps_its_place(
    fleet: Fleet,
) -> None:
    org = uuid4()
    ours = [(await fleet.join(node_request(models=("NVIDIA L4",), org=org))) for _ in range(3)]
    key = fleet.identity.new_key(org)
    before = [n.id for n in await all_nodes(fleet, key, limit=1)]
    again = node_request(models=("NVIDIA L4",), org=org)
    again.hostname = next(n.hostname for n in await all_nodes(fleet, key) if n.id == ours[0].node_id)
    again.gpus[0].uuid = f"GPU-{again.hostname}-0"
    await fleet.registry.RegisterNode(again, metadata=fleet.node(ours[0].node_id))
    after = [n.id for n in await all_nodes(fleet, key, limit=2)]
    assert before == after and len(set(after)) == len(after)
    dedicated = [n for n in after if n in {o.node_id for o in ours}]
    assert dedicated == [o.node_id for o in ours]


@pytest.mark.parametrize(
    "request_", [fleet_pb2.ListNodesRequest(limit=201), fleet_pb2.ListNodesRequest(cursor="x")]
)
async def test_bad_paging_is_invalid_argument(fleet: Fleet, request_) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.inventory.ListNodes(request_, metadata=with_key(fleet.identity.new_key()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_nodes_needs_a_valid_key(fleet: Fleet) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.inventory.ListNodes(fleet_pb2.ListNodesRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_fleet_keeps_no_allocations_and_never_stores_allocated(fleet: Fleet) -> None:
    async with fleet.db.transaction(system=True) as s:
        columns = set(
            (
                await s.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = 'fleet' AND table_name = 'gpu_resources'"
                    )
                )
            ).scalars()
        )
    assert not {"in_use", "current_job_id", "memory_allocated"} & columns
    resp = await fleet.join(node_request(models=("NVIDIA L4",)))
    with pytest.raises(Exception, match="gpu_resources_status_check"):
        async with fleet.db.transaction(system=True) as s:
            await s.execute(
                text("UPDATE gpu_resources SET status = 'allocated' WHERE id = :g"),
                {"g": resp.gpus[0].gpu_id},
            )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.inventory.ListGpus(
            fleet_pb2.ListGpusRequest(status="allocated"), metadata=with_key(fleet.identity.new_key())
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "scheduler" in err.value.details()
