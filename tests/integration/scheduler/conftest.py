"""In-process scheduler for integration tests: real PostgreSQL, real gRPC servers, and tiny fakes of
identity (API key -> principal) and fleet (the GPU type catalog) served over gRPC as well."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
import pytest
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc, identity_pb2_grpc, scheduler_pb2_grpc
from sqlalchemy import text

from services.scheduler.adapters.allocations_read import SqlAllocationReader
from services.scheduler.adapters.fleet_catalog import FleetGpuTypeCatalog
from services.scheduler.bootstrap import bootstrap
from services.scheduler.domain.inventory import InventoryGpu
from services.scheduler.entrypoints.agent_api import NodeAgentServicer
from services.scheduler.entrypoints.allocations import JobServicerWithAllocations
from services.scheduler.service_layer import commands, handlers
from services.scheduler.service_layer.handlers import Dependencies
from shared import api_keys, node_identity
from shared.db import Database
from shared.errors import InvalidArgument
from shared.grpc import Authenticator, NodeAuthenticator, agent_secret, channel
from tests.fake_node_registry import FakeNodeRegistry

# Tests written before node identity act for whichever node their request names with this one
# credential (AnyNodeAuthenticator below); the agent-identity tests use real per-node credentials
# (Harness.agent_of), verified through the fake fleet's AuthenticateNode like fleet's own.
AGENT_TOKEN = node_identity.new_credential()
GPU_TYPES = ("h100-80gb", "a100-40gb", "l40s")


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}

    async def Authenticate(self, request, context):
        principal = self.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return principal


class AnyNodeAuthenticator(NodeAuthenticator):
    """For the tests from before node identity: AGENT_TOKEN acts for the node the request names."""

    async def own_node(self, context, node_id):  # type: ignore[no-untyped-def]
        if agent_secret(context) != AGENT_TOKEN:
            return await super().own_node(context, node_id)
        try:
            return uuid.UUID(node_id)
        except ValueError as exc:
            raise InvalidArgument("node_id is not a valid UUID", field="node_id") from exc


class FakeFleet(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self) -> None:
        self.seen_authorization: list[str | None] = []

    async def ListGpuTypes(self, request, context):
        auth = dict(context.invocation_metadata()).get("authorization")
        self.seen_authorization.append(auth)
        if not auth:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing API key")
        return fleet_pb2.ListGpuTypesResponse(gpu_types=[fleet_pb2.GpuType(name=n) for n in GPU_TYPES])


@dataclass
class Harness:
    db: Database
    deps: Dependencies
    identity: FakeIdentity
    fleet: FakeFleet
    jobs: scheduler_pb2_grpc.JobServiceStub
    agents: scheduler_pb2_grpc.NodeAgentServiceStub
    fleet_target: str  # where the fake identity and fleet answer

    def tenant(self, role: str = "member") -> tuple[uuid.UUID, tuple[tuple[str, str], ...]]:
        """A fresh organization and the metadata of an API key of it with ``role``."""
        org = uuid.uuid4()
        return org, self.key(org, role)

    def key(self, org: uuid.UUID, role: str = "member") -> tuple[tuple[str, str], ...]:
        secret = api_keys.new_key()
        self.identity.keys[secret] = common_pb2.Principal(
            organization_id=str(org), user_id=str(uuid.uuid4()), role=role, api_key_id=str(uuid.uuid4())
        )
        return (("authorization", f"Bearer {secret}"),)

    registry: FakeNodeRegistry = field(default_factory=FakeNodeRegistry)

    @property
    def agent(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {AGENT_TOKEN}"),)

    def agent_of(self, node: uuid.UUID) -> tuple[tuple[str, str], ...]:
        """The metadata of ``node``'s agent: a credential fleet would have issued to that node."""
        credential = node_identity.new_credential()
        self.registry.nodes[credential] = node
        return (("authorization", f"Bearer {credential}"),)

    async def add_gpus(
        self,
        org: uuid.UUID | None,
        node: uuid.UUID,
        count: int,
        *,
        memory: int = 81920,
        gpu_type: str = "h100-80gb",
        price: str = "2.9900",
        labels: dict[str, str] | None = None,
    ) -> list[InventoryGpu]:
        """Project GPUs as fleet's events would (dedicated to ``org`` so tests never share capacity)."""
        gpus = [
            InventoryGpu(
                gpu_id=uuid.uuid4(),
                node_id=node,
                node_name=f"node-{node.hex[:6]}",
                device_index=i,
                gpu_type=gpu_type,
                memory_total_mb=memory,
                cost_per_hour=Decimal(price),
                organization_id=org,
                status="available",
                revision=1,
                node_labels=labels or {},
            )
            for i in range(count)
        ]
        for gpu in gpus:
            await handlers.apply_gpu_change(
                commands.ApplyGpuChange(event_id=uuid.uuid4(), gpu=gpu), self.deps
            )
        return gpus


async def _start(register) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def scheduler_db(migrate_schema) -> AsyncIterator[Database]:
    db = Database(await migrate_schema("scheduler"), "scheduler", pool_size=4)
    # Shared-pool GPUs projected by other suites (any test whose scheduler consumed the real fleet topic)
    # are visible to every organization and would take jobs these tests expect to stay queued.
    async with db.transaction(system=True) as session:
        await session.execute(
            text(
                "DELETE FROM gpu_inventory i WHERE i.organization_id IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM gpu_allocations a WHERE a.gpu_id = i.gpu_id)"
            )
        )
    yield db
    await db.dispose()


@pytest.fixture
async def harness(scheduler_db: Database) -> AsyncIterator[Harness]:
    identity, fleet, registry = FakeIdentity(), FakeFleet(), FakeNodeRegistry()

    def fakes(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)
        fleet_pb2_grpc.add_FleetServiceServicer_to_server(fleet, server)
        fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server(registry, server)

    fake_server, fake_target = await _start(fakes)
    catalog = FleetGpuTypeCatalog(fake_target, ttl=30)
    deps = bootstrap(db=scheduler_db, catalog=catalog)
    auth = Authenticator(fake_target, ttl=0)

    def scheduler(server: grpc.aio.Server) -> None:
        # As bootstrap registers it: JobServicer plus ListAllocations.
        jobs = JobServicerWithAllocations(deps, auth, SqlAllocationReader(scheduler_db))
        scheduler_pb2_grpc.add_JobServiceServicer_to_server(jobs, server)
        scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server(
            NodeAgentServicer(deps, AnyNodeAuthenticator(fake_target, ttl=0)), server
        )

    server, target = await _start(scheduler)
    client = channel(target)
    yield Harness(
        db=scheduler_db,
        deps=deps,
        identity=identity,
        fleet=fleet,
        jobs=scheduler_pb2_grpc.JobServiceStub(client),
        agents=scheduler_pb2_grpc.NodeAgentServiceStub(client),
        fleet_target=fake_target,
        registry=registry,
    )
    await client.close()
    await server.stop(None)
    await auth.close()
    await catalog.close()
    await fake_server.stop(None)
