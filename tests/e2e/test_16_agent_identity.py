"""Agents with their own identity, over gRPC against the running stack (docs/agent-identity.md): another
node's credential, a stale (revoked) one, a report for a job on another node and a GPU UUID claimed by
a second node are each refused (PERMISSION_DENIED / UNAUTHENTICATED) and change nothing."""

from __future__ import annotations

import json
import uuid

import grpc
import httpx
import pytest
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

from shared.grpc import with_key
from tests.e2e.helpers import client, eventually, wait_status

pytestmark = pytest.mark.e2e


async def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


def _node(hostname: str, uuids: list[str]) -> fleet_pb2.RegisterNodeRequest:
    return fleet_pb2.RegisterNodeRequest(
        hostname=hostname,
        gpu_backend="simulated",
        gpus=[
            fleet_pb2.GpuInfo(index=i, uuid=u, model="NVIDIA A100-SXM4-80GB", memory_total_mb=81920)
            for i, u in enumerate(uuids)
        ],
    )


async def test_a_node_acts_only_as_itself(stack, orgs):
    path = stack.agent_state_dir("agent") / "node_credential.json"

    async def joined_already() -> bool:
        return path.exists()

    await eventually(joined_already)  # the stack's agent joins once the stack is up
    stored = json.loads(path.read_text())
    node_a, cred_a = stored["node_id"], stored["credential"]
    async with (
        grpc.aio.insecure_channel(stack.target("fleet")) as fleet_ch,
        grpc.aio.insecure_channel(stack.target("fleet-agent")) as fleet_agent_ch,
        grpc.aio.insecure_channel(stack.target("scheduler")) as sched_ch,
        grpc.aio.insecure_channel(stack.target("scheduler-agent")) as sched_agent_ch,
        client(stack, orgs["a"]) as api,
    ):
        # Agents' RPCs on the agent listeners only; the tenant-facing ports do not have them.
        registry = fleet_pb2_grpc.NodeRegistryServiceStub(fleet_agent_ch)
        inventory = fleet_pb2_grpc.FleetServiceStub(fleet_ch)
        agents = scheduler_pb2_grpc.NodeAgentServiceStub(sched_agent_ch)
        on_tenant_port = scheduler_pb2_grpc.NodeAgentServiceStub(sched_ch)
        ask_a = scheduler_pb2.GetAssignmentsRequest(node_id=node_a)
        code = await _code(on_tenant_port.GetAssignments(ask_a, metadata=with_key(cred_a)))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        beat_a = fleet_pb2.HeartbeatRequest(node_id=node_a)
        code = await _code(
            fleet_pb2_grpc.NodeRegistryServiceStub(fleet_ch).Heartbeat(beat_a, metadata=with_key(cred_a))
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED
        code = await _code(
            fleet_pb2_grpc.FleetServiceStub(fleet_agent_ch).ListGpus(
                fleet_pb2.ListGpusRequest(), metadata=with_key(orgs["a"])
            )
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED

        # A second node, joined with its own token, dedicated to an organization that is neither a nor b
        # (so a's job can only land on the stack's agent).
        token_b = await stack.join_token("e2e-node-b", organization_id=str(uuid.uuid4()))
        host_b = f"e2e-node-{uuid.uuid4().hex[:6]}"
        joined = await registry.RegisterNode(_node(host_b, [f"GPU-{host_b}-0"]), metadata=with_key(token_b))
        node_b, cred_b = joined.node_id, joined.node_credential.credential
        assert cred_b.startswith("gpfn_") and node_b != node_a

        created = await api.post("/jobs", json={"command": "sleep 60", "gpu_count": 1})
        assert created.status_code == 201, created.text
        job = await wait_status(api, created.json()["id"], {"running"}, timeout=60)

        # Another node's credential: not A's assignments, stream, heartbeat or reports.
        mine_b = with_key(cred_b)
        ask = scheduler_pb2.GetAssignmentsRequest(node_id=node_a)
        assert await _code(agents.GetAssignments(ask, metadata=mine_b)) == grpc.StatusCode.PERMISSION_DENIED
        stream = agents.WatchAssignments(
            scheduler_pb2.WatchAssignmentsRequest(node_id=node_a), metadata=mine_b
        )
        assert await _code(stream.read()) == grpc.StatusCode.PERMISSION_DENIED
        beat = fleet_pb2.HeartbeatRequest(node_id=node_a)
        assert await _code(registry.Heartbeat(beat, metadata=mine_b)) == grpc.StatusCode.PERMISSION_DENIED
        # A report for a job on another node (B names itself, the job is A's): refused, one or batched.
        done = scheduler_pb2.ReportJobFinishedRequest(node_id=node_b, job_id=job["id"], has_exit_code=True)
        assert (
            await _code(agents.ReportJobFinished(done, metadata=mine_b)) == grpc.StatusCode.PERMISSION_DENIED
        )
        batch = scheduler_pb2.ReportJobsRequest(
            node_id=node_b, reports=[scheduler_pb2.JobReport(job_id=job["id"], finished=done)]
        )
        assert await _code(agents.ReportJobs(batch, metadata=mine_b)) == grpc.StatusCode.PERMISSION_DENIED
        # Neither an API key nor the operator token is an agent credential.
        for wrong in (orgs["a"], stack.admin_token):
            code = await _code(agents.GetAssignments(ask, metadata=with_key(wrong)))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        mine = (await agents.GetAssignments(ask, metadata=with_key(cred_a))).assignments
        assert job["id"] in [a.job_id for a in mine]  # A itself still sees its job

        # A GPU UUID registered to A, claimed by a third node: refused, and nothing moved.
        gpus = (await inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(orgs["a"]))).gpus
        a_gpu = next(g for g in gpus if g.node_id == node_a)
        token_c = await stack.join_token("e2e-node-c")
        host_c = f"e2e-node-{uuid.uuid4().hex[:6]}"
        code = await _code(registry.RegisterNode(_node(host_c, [a_gpu.uuid]), metadata=with_key(token_c)))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        after = (await inventory.ListGpus(fleet_pb2.ListGpusRequest(), metadata=with_key(orgs["a"]))).gpus
        assert [g.node_id for g in after if g.uuid == a_gpu.uuid] == [node_a]
        assert not [g for g in after if g.node_name == host_c]

        still = (await api.get(f"/jobs/{job['id']}")).json()
        assert still["status"] == "running"  # nothing the refused calls said changed it

        # A stale credential: B decommissioned by the operator; within about a second nothing takes it.
        async with httpx.AsyncClient(base_url=f"{stack.gateway_url}/v1") as op:
            r = await op.post(
                f"/admin/nodes/{node_b}/decommission",
                headers={"Authorization": f"Bearer {stack.admin_token}"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["revoked_credentials"] == 1
            listed = await op.get(
                "/admin/join-tokens",
                params={"include_inactive": "true"},
                headers={"Authorization": f"Bearer {stack.admin_token}"},
            )
            assert {"used"} <= {t["state"] for t in listed.json()["join_tokens"]}
            assert all(t["token"] is None for t in listed.json()["join_tokens"])
            denied = await op.post(
                "/admin/join-tokens", json={}, headers={"Authorization": f"Bearer {orgs['a']}"}
            )
            assert denied.status_code == 403

        own_b = scheduler_pb2.GetAssignmentsRequest(node_id=node_b)

        async def refused() -> bool:
            return (
                await _code(agents.GetAssignments(own_b, metadata=mine_b)) == grpc.StatusCode.UNAUTHENTICATED
            )

        async def refused_or_none() -> bool | None:
            try:
                await agents.GetAssignments(own_b, metadata=mine_b)
            except grpc.aio.AioRpcError as exc:
                return exc.code() == grpc.StatusCode.UNAUTHENTICATED or None
            return None

        assert await eventually(refused_or_none, timeout=10)
        assert await refused()
        beat_b = fleet_pb2.HeartbeatRequest(node_id=node_b)
        assert await _code(registry.Heartbeat(beat_b, metadata=mine_b)) == grpc.StatusCode.UNAUTHENTICATED

        await api.post(f"/jobs/{job['id']}/cancel")
