"""Node registration, heartbeats, the offline sweep and tenant visibility over gRPC and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, fleet_pb2
from prometheus_client import REGISTRY
from sqlalchemy import text

from shared.contracts import fleet as contract
from shared.contracts import topics
from shared.events import decode
from shared.grpc import with_key

from .conftest import Fleet

pytestmark = pytest.mark.integration


def node_request(
    hostname: str | None = None,
    models=("NVIDIA H100 80GB HBM3", "Acme Tensor 9000"),
    org: UUID | None = None,
    **extra,
) -> fleet_pb2.RegisterNodeRequest:
    hostname = hostname or f"node-{uuid4().hex[:8]}"
    fields = {
        "provider": "on-prem",
        "gpu_backend": "simulated",
        "driver_version": "550.54",
        "agent_version": "0.1",
        **extra,
    }
    return fleet_pb2.RegisterNodeRequest(
        hostname=hostname,
        organization_id=str(org) if org else "",
        gpus=[
            fleet_pb2.GpuInfo(index=i, uuid=f"GPU-{hostname}-{i}", model=m, memory_total_mb=81559)
            for i, m in enumerate(models)
        ],
        **fields,
    )


async def outbox_events(fleet: Fleet, gpu_ids) -> list:
    async with fleet.db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT topic, key, headers, payload FROM outbox WHERE key = ANY(:keys) ORDER BY id"),
                {"keys": [str(g) for g in gpu_ids]},
            )
        ).all()
    for row in rows:
        assert row.topic == topics.FLEET
    return [decode(row.headers, bytes(row.payload), contract.EVENT_TYPES) for row in rows]


async def gpu_rows(fleet: Fleet, node_id: str) -> dict[str, tuple]:
    async with fleet.db.transaction(system=True) as s:
        rows = (
            await s.execute(
                text("SELECT id, status FROM gpu_resources WHERE node_id = :n"),
                {"n": node_id},
            )
        ).all()
    return {str(r.id): (r.status,) for r in rows}


async def test_register_node_types_prices_and_announces_its_gpus(fleet: Fleet) -> None:
    req = node_request()
    resp = await fleet.join(req)
    assert resp.heartbeat_interval_seconds == 7
    assert [(g.index, g.gpu_type, g.cost_per_hour) for g in resp.gpus] == [
        (0, "h100-80gb", "2.9900"),
        (1, "unknown", "0.1500"),
    ]
    assert [g.name for g in resp.gpus] == [f"{req.hostname}-gpu0", f"{req.hostname}-gpu1"]
    events = await outbox_events(fleet, [g.gpu_id for g in resp.gpus])
    assert [e.type for e in events] == [contract.GPU_REGISTERED] * 2
    first = events[0].data.gpu
    assert (str(first.gpu_id), str(first.node_id), first.node_name, first.name) == (
        resp.gpus[0].gpu_id,
        resp.node_id,
        req.hostname,
        f"{req.hostname}-gpu0",
    )
    assert (first.gpu_type, first.cost_per_hour, first.status, first.revision) == (
        "h100-80gb",
        Decimal("2.9900"),
        "available",
        1,
    )
    assert (first.memory_total_mb, first.uuid, first.organization_id) == (
        81559,
        f"GPU-{req.hostname}-0",
        None,
    )
    assert events[0].subject == resp.gpus[0].gpu_id


async def test_node_capacity_and_labels_are_stored_and_published(fleet: Fleet) -> None:
    req = node_request(cpu_cores=96, ram_mb=1_048_576, labels={"nvlink_domain": "a", "rack": "r1"})
    resp = await fleet.join(req)
    async with fleet.db.transaction(system=True) as s:
        row = (
            await s.execute(
                text("SELECT cpu_cores, ram_mb, labels FROM nodes WHERE id = :n"), {"n": resp.node_id}
            )
        ).one()
    assert (row.cpu_cores, row.ram_mb, row.labels) == (96, 1_048_576, {"nvlink_domain": "a", "rack": "r1"})
    events = await outbox_events(fleet, [g.gpu_id for g in resp.gpus])
    assert {(e.data.gpu.node_cpu_cores, e.data.gpu.node_ram_mb) for e in events} == {(96, 1_048_576)}
    assert all(e.data.gpu.node_labels == {"nvlink_domain": "a", "rack": "r1"} for e in events)

    # The health events of those GPUs carry them too (read back from the node's row).
    sick = resp.gpus[0].gpu_id
    await fleet.registry.Heartbeat(
        fleet_pb2.HeartbeatRequest(node_id=resp.node_id, unhealthy_gpu_ids=[sick]),
        metadata=fleet.node(resp.node_id),
    )
    changed = (await outbox_events(fleet, [sick]))[-1]
    assert changed.type == contract.GPU_STATUS_CHANGED and changed.data.gpu.node_cpu_cores == 96
    assert changed.data.gpu.node_labels == {"nvlink_domain": "a", "rack": "r1"}


async def test_bad_labels_or_capacity_are_refused_naming_the_field(fleet: Fleet) -> None:
    for extra, field in (({"labels": {"bad key": "x"}}, "labels"), ({"cpu_cores": -2}, "cpu_cores")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await fleet.registry.RegisterNode(
                node_request(**extra), metadata=with_key(await fleet.join_token())
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(err.value.trailing_metadata() or ()).get("gpufleet-error-field") == field


async def test_reregistration_keeps_ids_and_publishes_nothing_new(fleet: Fleet) -> None:
    req = node_request()
    first = await fleet.join(req)
    again = await fleet.registry.RegisterNode(req, metadata=fleet.node(first.node_id))
    assert not again.HasField("node_credential")  # issued once, at the join
    first.ClearField("node_credential")
    assert again == first
    assert len(await outbox_events(fleet, [g.gpu_id for g in first.gpus])) == 2


async def test_spot_node_of_an_organization_pays_spot_and_is_announced_as_dedicated(fleet: Fleet) -> None:
    org = uuid4()
    resp = await fleet.join(node_request(org=org, is_spot=True, models=("Tesla T4",)))
    assert resp.gpus[0].cost_per_hour == "0.1600"
    (event,) = await outbox_events(fleet, [resp.gpus[0].gpu_id])
    assert (
        event.data.gpu.organization_id == org and event.data.gpu.is_spot and event.organization_id == str(org)
    )


async def test_heartbeat_health_reports_and_the_offline_sweep(fleet: Fleet) -> None:
    resp = await fleet.join(node_request())
    sick, healthy = resp.gpus[1].gpu_id, resp.gpus[0].gpu_id
    beat = await fleet.registry.Heartbeat(
        fleet_pb2.HeartbeatRequest(node_id=resp.node_id, unhealthy_gpu_ids=[sick]),
        metadata=fleet.node(resp.node_id),
    )
    assert beat.known
    assert (await gpu_rows(fleet, resp.node_id))[sick][0] == "unhealthy"

    async with fleet.db.transaction(system=True) as s:  # the node fell silent an hour ago
        await s.execute(
            text("UPDATE nodes SET last_heartbeat = now() - interval '1 hour' WHERE id = :n"),
            {"n": resp.node_id},
        )
    await fleet.app.sweep_once()
    assert {s for s, *_ in (await gpu_rows(fleet, resp.node_id)).values()} == {"offline"}

    await fleet.registry.Heartbeat(
        fleet_pb2.HeartbeatRequest(node_id=resp.node_id), metadata=fleet.node(resp.node_id)
    )
    rows = await gpu_rows(fleet, resp.node_id)
    assert rows[healthy][0] == "available" and rows[sick][0] == "available"
    events = await outbox_events(fleet, [sick])
    assert [(e.type, e.data.gpu.status, e.data.gpu.revision) for e in events] == [
        (contract.GPU_REGISTERED, "available", 1),
        (contract.GPU_STATUS_CHANGED, "unhealthy", 2),
        (contract.GPU_STATUS_CHANGED, "offline", 3),
        (contract.GPU_STATUS_CHANGED, "available", 4),
    ]
    async with fleet.db.transaction(system=True) as s:
        status = (
            await s.execute(text("SELECT status FROM nodes WHERE id = :n"), {"n": resp.node_id})
        ).scalar()
    assert status == "online"


async def test_heartbeat_for_another_node_id_is_permission_denied(fleet: Fleet) -> None:
    resp = await fleet.join(node_request())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.registry.Heartbeat(
            fleet_pb2.HeartbeatRequest(node_id=str(uuid4())), metadata=fleet.node(resp.node_id)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_tenants_see_the_shared_pool_and_only_their_own_dedicated_gpus(fleet: Fleet) -> None:
    org_a, org_b = uuid4(), uuid4()
    key_a, key_b = fleet.identity.new_key(org_a), fleet.identity.new_key(org_b)
    shared = await fleet.join(node_request(models=("NVIDIA L4",)))
    dedicated = await fleet.join(node_request(org=org_a, models=("NVIDIA L4",)))
    ours = {shared.node_id, dedicated.node_id}

    seen_a = [
        g
        for g in (await fleet.inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(key_a))).gpus
        if g.node_id in ours
    ]
    seen_b = [
        g
        for g in (await fleet.inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(key_b))).gpus
        if g.node_id in ours
    ]
    assert {(g.node_id, g.dedicated) for g in seen_a} == {(shared.node_id, False), (dedicated.node_id, True)}
    assert {(g.node_id, g.dedicated) for g in seen_b} == {(shared.node_id, False)}
    gpu = next(g for g in seen_a if g.dedicated)
    # in_use is deprecated: fleet keeps no allocations and leaves it false (the scheduler says who holds it).
    assert (gpu.gpu_type, gpu.cost_per_hour, gpu.status, gpu.in_use, gpu.index) == (
        "l4",
        "0.7000",
        "available",
        False,
        0,
    )
    assert gpu.last_active.endswith("Z") and gpu.name.endswith("-gpu0")

    filtered = await fleet.inventory.ListGpus(
        fleet_pb2.ListGpusRequest(gpu_type="l4", status="unhealthy"), metadata=with_key(key_a)
    )
    assert not [g for g in filtered.gpus if g.node_id in ours]

    async with fleet.db.transaction(org_id=org_b) as s:  # RLS itself, beneath the service
        visible = (
            await s.execute(
                text("SELECT count(*) FROM gpu_resources WHERE node_id = :n"), {"n": dedicated.node_id}
            )
        ).scalar()
        changed = (
            await s.execute(
                text("UPDATE gpu_resources SET status = 'draining' WHERE node_id = :n"), {"n": shared.node_id}
            )
        ).rowcount
    assert (visible, changed) == (0, 0)


async def test_gpu_type_catalog_lists_active_types(fleet: Fleet) -> None:
    key = fleet.identity.new_key()
    types = {
        t.name: t
        for t in (await fleet.inventory.ListGpuTypes(common_pb2.Empty(), metadata=with_key(key))).gpu_types
    }
    assert {
        "h100-80gb",
        "h200-141gb",
        "a100-80gb",
        "a100-40gb",
        "l40s",
        "l4",
        "a10g",
        "t4",
        "v100-16gb",
        "rtx-4090",
    } <= set(types)
    assert (types["a100-80gb"].memory_mb, types["a100-80gb"].reference_price_per_hour) == (81920, "1.8900")


@pytest.mark.parametrize("token", [None, "wrong-token", "", "test-operator-token", "gpfn_" + "0" * 46])
async def test_agent_calls_need_a_join_token_or_node_credential(fleet: Fleet, token: str | None) -> None:
    metadata = None if token is None else with_key(token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.registry.RegisterNode(node_request(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.registry.Heartbeat(fleet_pb2.HeartbeatRequest(node_id=str(uuid4())), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("key", [None, "gpf_unknown"])
async def test_tenant_calls_need_a_valid_api_key(fleet: Fleet, key: str | None) -> None:
    metadata = with_key(key) if key else None
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _dup_index() -> fleet_pb2.RegisterNodeRequest:
    req = node_request(models=("NVIDIA L4", "NVIDIA L4"))
    req.gpus[1].index = 0
    return req


def _zero_memory() -> fleet_pb2.RegisterNodeRequest:
    req = node_request(models=("NVIDIA L4",))
    req.gpus[0].memory_total_mb = 0
    return req


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (node_request(hostname=" "), "hostname"),
        (node_request(gpu_backend="rocm"), "gpu_backend"),
        (_dup_index(), "gpus[1].index"),
        (_zero_memory(), "gpus[0].memory_total_mb"),
        (node_request(models=()), "gpus"),
    ],
)
async def test_bad_registration_is_invalid_argument_naming_the_field(
    fleet: Fleet, request_, field: str
) -> None:
    token = await fleet.join_token()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.registry.RegisterNode(request_, metadata=with_key(token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata() or ()).get("gpufleet-error-field") == field


async def test_bad_heartbeat_and_filters_are_invalid_argument(fleet: Fleet) -> None:
    other = await fleet.join(node_request(models=("NVIDIA L4",)))
    node = await fleet.join(node_request(models=("NVIDIA L4",)))
    for req in (
        fleet_pb2.HeartbeatRequest(node_id=""),
        fleet_pb2.HeartbeatRequest(node_id="nope"),
        fleet_pb2.HeartbeatRequest(node_id=node.node_id, unhealthy_gpu_ids=["nope"]),
        fleet_pb2.HeartbeatRequest(node_id=node.node_id, unhealthy_gpu_ids=[other.gpus[0].gpu_id]),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await fleet.registry.Heartbeat(req, metadata=fleet.node(node.node_id))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fleet.inventory.ListGpus(
            fleet_pb2.ListGpusRequest(status="busy"), metadata=with_key(fleet.identity.new_key())
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_heartbeats_are_counted_and_a_sweep_round_refreshes_the_fleet_gauges(fleet: Fleet) -> None:
    node = await fleet.join(node_request(models=("NVIDIA L4",)))
    before = REGISTRY.get_sample_value("gpufleet_fleet_heartbeats_total") or 0.0
    await fleet.registry.Heartbeat(
        fleet_pb2.HeartbeatRequest(node_id=node.node_id), metadata=fleet.node(node.node_id)
    )
    assert REGISTRY.get_sample_value("gpufleet_fleet_heartbeats_total") == before + 1

    await fleet.app.sweep_once()
    async with fleet.db.transaction(system=True) as s:
        nodes = dict((await s.execute(text("SELECT status, count(*) FROM nodes GROUP BY status"))).all())
        gpus = dict(
            (await s.execute(text("SELECT status, count(*) FROM gpu_resources GROUP BY status"))).all()
        )
    assert nodes.get("online", 0) >= 1 and gpus.get("available", 0) >= 1
    for status in ("online", "offline"):
        assert REGISTRY.get_sample_value("gpufleet_fleet_nodes", {"status": status}) == nodes.get(status, 0)
    for status in ("available", "draining", "unhealthy", "offline"):
        assert REGISTRY.get_sample_value("gpufleet_fleet_gpus", {"status": status}) == gpus.get(status, 0)
