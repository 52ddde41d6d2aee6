"""The node agents' NodeAgentService on a listener of its own (GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN), apart
from the tenant-facing JobService and PolicyService: each works only on its own port, the other answers
UNIMPLEMENTED; unset, one port serves both, as before. The whole process (``__main__.build``).

Named to run next to test_main.py: started before test_allocations.py, a whole process leaves the package's
shared database in a state where test_preemption.py's and test_scheduler.py's never-fitting submits are
refused (not yet understood; see the stop note of 2026-12-03)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import grpc
import pytest
from gpufleet.v1 import fleet_pb2_grpc, identity_pb2_grpc, policy_pb2, policy_pb2_grpc
from gpufleet.v1 import scheduler_pb2 as pb
from gpufleet.v1 import scheduler_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.scheduler.__main__ import build
from services.scheduler.config import SchedulerSettings
from shared.embedded.postgres import free_port

from ..listeners import code_of
from ..listeners import running as listeners_running
from .test_main import settings

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING


def running(config: SchedulerSettings) -> AbstractAsyncContextManager[None]:
    listeners = [(config.scheduler_grpc_listen, "gpufleet.v1.JobService")]
    if config.scheduler_agent_grpc_listen:
        listeners.append((config.scheduler_agent_grpc_listen, "gpufleet.v1.NodeAgentService"))
    return listeners_running(build(config), listeners)


@asynccontextmanager
async def fleet_without_the_registry(harness) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """Identity and FleetService (GPU types) but no NodeRegistryService: where GPUFLEET_FLEET_GRPC_TARGET
    points when fleet serves its agents' registry on its own listener."""
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(harness.identity, server)
    fleet_pb2_grpc.add_FleetServiceServicer_to_server(harness.fleet, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_with_an_agent_listener_each_side_answers_only_on_its_own_port(harness, kafka, migrate_schema):
    async with fleet_without_the_registry(harness) as tenant_fleet:
        config = settings(await migrate_schema("scheduler"), harness, kafka).model_copy(
            update={
                "scheduler_agent_grpc_listen": f"127.0.0.1:{free_port()}",
                "identity_grpc_target": tenant_fleet,
                "fleet_grpc_target": tenant_fleet,
                # Node credentials are verified on fleet's agent listener (here: the harness's registry).
                "fleet_agent_grpc_target": harness.fleet_target,
            }
        )
        _, key = harness.tenant()
        node = uuid.uuid4()
        ask = pb.GetAssignmentsRequest(node_id=str(node))
        async with (
            running(config),
            grpc.aio.insecure_channel(config.scheduler_grpc_listen) as tenant_ch,
            grpc.aio.insecure_channel(config.scheduler_agent_grpc_listen) as agent_ch,
        ):
            # The tenant port: jobs and policy, no agent API.
            job = await pb_grpc.JobServiceStub(tenant_ch).SubmitJob(
                pb.SubmitJobRequest(command="echo", gpu_count=1), metadata=key
            )
            assert job.status == "queued"
            on_tenant = pb_grpc.NodeAgentServiceStub(tenant_ch)
            assert await code_of(on_tenant.GetAssignments(ask, metadata=harness.agent_of(node))) == (
                grpc.StatusCode.UNIMPLEMENTED
            )
            # The agent port: the agent API (credential verified through fleet's agent target), nothing else.
            got = await pb_grpc.NodeAgentServiceStub(agent_ch).GetAssignments(
                ask, metadata=harness.agent_of(node)
            )
            assert list(got.assignments) == []
            jobs_on_agent = pb_grpc.JobServiceStub(agent_ch)
            assert await code_of(jobs_on_agent.GetJob(pb.GetJobRequest(id=job.id), metadata=key)) == (
                grpc.StatusCode.UNIMPLEMENTED
            )
            assert await code_of(
                jobs_on_agent.SubmitJob(pb.SubmitJobRequest(command="echo", gpu_count=1), metadata=key)
            ) == (grpc.StatusCode.UNIMPLEMENTED)
            policy_on_agent = policy_pb2_grpc.PolicyServiceStub(agent_ch)
            assert await code_of(policy_on_agent.GetPolicy(policy_pb2.GetPolicyRequest(), metadata=key)) == (
                grpc.StatusCode.UNIMPLEMENTED
            )
            # Each listener's health names only its own services.
            health_tenant = health_pb2_grpc.HealthStub(tenant_ch)
            health_agent = health_pb2_grpc.HealthStub(agent_ch)
            for stub, unknown in (
                (health_tenant, "gpufleet.v1.NodeAgentService"),
                (health_agent, "gpufleet.v1.JobService"),
            ):
                assert (await stub.Check(health_pb2.HealthCheckRequest(service=""))).status == SERVING
                code = await code_of(stub.Check(health_pb2.HealthCheckRequest(service=unknown)))
                assert code == grpc.StatusCode.NOT_FOUND


async def test_without_an_agent_listener_one_port_serves_both_and_says_so(
    harness, kafka, migrate_schema, caplog
):
    config = settings(await migrate_schema("scheduler"), harness, kafka)
    assert config.scheduler_agent_grpc_listen == ""
    _, key = harness.tenant()
    node = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="gpufleet.runtime"):
        async with running(config), grpc.aio.insecure_channel(config.scheduler_grpc_listen) as ch:
            job = await pb_grpc.JobServiceStub(ch).SubmitJob(
                pb.SubmitJobRequest(command="echo", gpu_count=1), metadata=key
            )
            assert job.status == "queued"
            got = await pb_grpc.NodeAgentServiceStub(ch).GetAssignments(
                pb.GetAssignmentsRequest(node_id=str(node)), metadata=harness.agent_of(node)
            )
            assert list(got.assignments) == []
    said = [r for r in caplog.records if "share the tenant-facing gRPC listener" in r.getMessage()]
    assert len(said) == 1
    assert said[0].setting == "GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN"  # type: ignore[attr-defined]
