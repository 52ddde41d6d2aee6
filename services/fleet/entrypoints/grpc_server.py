"""gRPC servicers: translate wire messages to commands and results back. No business branching here."""

from __future__ import annotations

from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc

from shared.errors import InvalidArgument
from shared.grpc import Authenticator, grpc_service, require_agent, tenant_of
from shared.wire import dec, opt, ts, uuid_arg

from ..domain.catalog import GpuType
from ..domain.model import Gpu, NodeRegistration, ReportedGpu
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, NodePage, RegisteredNode, handle
from ..service_layer.unit_of_work import NodeInventory


def _gpu(gpu: Gpu) -> fleet_pb2.Gpu:
    # Inventory and health only; ``in_use`` stays false (deprecated): allocation is the scheduler's.
    return fleet_pb2.Gpu(
        id=str(gpu.id),
        name=gpu.name,
        gpu_type=gpu.gpu_type,
        node_id=str(gpu.node_id),
        node_name=gpu.node_name,
        index=gpu.index,
        uuid=gpu.uuid,
        memory_total_mb=gpu.memory_total_mb,
        status=gpu.status,
        cost_per_hour=dec(gpu.cost_per_hour),
        provider=gpu.provider,
        is_spot=gpu.is_spot,
        dedicated=gpu.organization_id is not None,
        last_active=ts(gpu.last_active),
    )


def _node(inventory: NodeInventory) -> fleet_pb2.Node:
    node = inventory.node
    return fleet_pb2.Node(
        id=str(node.id),
        hostname=node.hostname,
        provider=node.provider,
        is_spot=node.is_spot,
        status=node.status,
        last_heartbeat=ts(node.last_heartbeat),
        cpu_cores=node.cpu_cores,
        ram_mb=node.ram_mb,
        labels=node.labels,
        dedicated=node.organization_id is not None,
        registered_at=ts(node.registered_at),
        gpus=[_gpu(g) for g in inventory.gpus],
    )


def _gpu_type(t: GpuType) -> fleet_pb2.GpuType:
    return fleet_pb2.GpuType(
        name=t.name,
        vendor=t.vendor,
        model=t.model,
        memory_mb=t.memory_mb,
        reference_price_per_hour=dec(t.reference_price_per_hour),
    )


def _optional_uuid(value: str, field: str) -> UUID | None:
    return uuid_arg(value, field) if value else None


@grpc_service
class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, deps: Dependencies, auth: Authenticator) -> None:
        self.deps, self.auth = deps, auth

    async def ListGpus(
        self, request: fleet_pb2.ListGpusRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.ListGpusResponse:
        principal = await self.auth.principal(context)
        cmd = commands.ListGpus(
            organization_id=tenant_of(principal), status=opt(request.status), gpu_type=opt(request.gpu_type)
        )
        gpus: list[Gpu] = await handle(cmd, self.deps)
        return fleet_pb2.ListGpusResponse(gpus=[_gpu(g) for g in gpus])

    async def ListGpuTypes(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.ListGpuTypesResponse:
        principal = await self.auth.principal(context)
        types: list[GpuType] = await handle(commands.ListGpuTypes(tenant_of(principal)), self.deps)
        return fleet_pb2.ListGpuTypesResponse(gpu_types=[_gpu_type(t) for t in types])

    async def ListNodes(
        self, request: fleet_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.ListNodesResponse:
        principal = await self.auth.principal(context)
        cmd = commands.ListNodes(tenant_of(principal), limit=request.limit, cursor=opt(request.cursor))
        page: NodePage = await handle(cmd, self.deps)
        return fleet_pb2.ListNodesResponse(
            nodes=[_node(n) for n in page.nodes], next_cursor=page.next_cursor or ""
        )


@grpc_service
class NodeRegistryServicer(fleet_pb2_grpc.NodeRegistryServiceServicer):
    def __init__(self, deps: Dependencies, agent_token: str) -> None:
        self.deps, self._agent_token = deps, agent_token

    async def RegisterNode(
        self, request: fleet_pb2.RegisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.RegisterNodeResponse:
        require_agent(context, self._agent_token)
        registration = NodeRegistration(
            hostname=request.hostname,
            provider=request.provider,
            gpu_backend=request.gpu_backend,
            driver_version=opt(request.driver_version),
            agent_version=opt(request.agent_version),
            organization_id=_optional_uuid(request.organization_id, "organization_id"),
            is_spot=request.is_spot,
            gpus=tuple(
                ReportedGpu(index=g.index, uuid=g.uuid, model=g.model, memory_total_mb=g.memory_total_mb)
                for g in request.gpus
            ),
            cpu_cores=request.cpu_cores,
            ram_mb=request.ram_mb,
            labels=dict(request.labels),
        )
        done: RegisteredNode = await handle(commands.RegisterNode(registration), self.deps)
        return fleet_pb2.RegisterNodeResponse(
            node_id=str(done.node_id),
            gpus=[
                fleet_pb2.RegisteredGpu(
                    index=g.index,
                    gpu_id=str(g.gpu_id),
                    gpu_type=g.gpu_type,
                    cost_per_hour=dec(g.cost_per_hour),
                    name=g.name,
                )
                for g in done.gpus
            ],
            heartbeat_interval_seconds=done.heartbeat_interval_seconds,
        )

    async def Heartbeat(
        self, request: fleet_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.HeartbeatResponse:
        require_agent(context, self._agent_token)
        if not request.node_id:
            raise InvalidArgument("node_id is required", field="node_id")
        cmd = commands.RecordHeartbeat(
            node_id=uuid_arg(request.node_id, "node_id"),
            unhealthy_gpu_ids=frozenset(uuid_arg(g, "unhealthy_gpu_ids") for g in request.unhealthy_gpu_ids),
        )
        return fleet_pb2.HeartbeatResponse(known=await handle(cmd, self.deps))
