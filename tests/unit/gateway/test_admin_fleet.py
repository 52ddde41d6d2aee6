"""The operator's whole-fleet answer (GET /v1/admin/fleet): fleet's nodes merged with the scheduler's holds."""

from __future__ import annotations

from gpufleet.v1 import fleet_pb2, policy_pb2

from services.gateway.entrypoints.responses_admin import fleet_out


def test_a_held_gpu_shows_allocated_with_its_job_and_organization() -> None:
    node = fleet_pb2.Node(
        id="n1",
        hostname="gpu-01",
        status="online",
        gpus=[
            fleet_pb2.Gpu(id="g0", index=0, gpu_type="l4", status="available"),
            fleet_pb2.Gpu(id="g1", index=1, gpu_type="l4", status="available"),
            fleet_pb2.Gpu(id="g2", index=2, gpu_type="l4", status="unhealthy"),
        ],
    )
    holds = [
        policy_pb2.HeldGpu(gpu_id="g1", node_id="n1", job_id="j1", organization_id="o1"),
        policy_pb2.HeldGpu(gpu_id="g2", node_id="n1", job_id="j2", organization_id="o2"),
    ]
    out = fleet_out([fleet_pb2.FleetNode(node=node, organization_id="o9")], holds)
    [n] = out.nodes
    assert n.organization_id == "o9" and n.hostname == "gpu-01" and n.last_heartbeat is None
    g0, g1, g2 = n.gpus
    assert (g0.status, g0.holder) == ("available", None)
    assert g1.status == "allocated" and g1.holder is not None
    assert (g1.holder.organization_id, g1.holder.job_id) == ("o1", "j1")
    # A held GPU that went unhealthy says so, and who still holds it.
    assert g2.status == "unhealthy" and g2.holder is not None and g2.holder.job_id == "j2"


def test_a_shared_node_has_no_organization() -> None:
    out = fleet_out([fleet_pb2.FleetNode(node=fleet_pb2.Node(id="n2", hostname="h"))], [])
    assert out.nodes[0].organization_id is None and out.nodes[0].gpus == []
