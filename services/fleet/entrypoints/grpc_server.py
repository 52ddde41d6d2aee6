"""gRPC servicers: translate wire messages to commands and results back. No business branching here."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc

from shared.errors import InvalidArgument
from shared.grpc import Authenticator, agent_secret, grpc_service, tenant_of
from shared.wire import dec, opt, ts, uuid_arg

from ..domain.catalog import GpuType
from ..domain.identity import JoinToken
from ..domain.model import Gpu, Node, NodeRegistration, ReportedGpu
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, NodePage, RegisteredNode, handle
from ..service_layer.identity import CreatedJoinToken, Decommissioned, IssuedCredential
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


def _credential(issued: IssuedCredential) -> fleet_pb2.NodeCredential:
    return fleet_pb2.NodeCredential(
        node_id=str(issued.node_id),
        credential=issued.secret,
        expires_at=ts(issued.expires_at),
        previous_valid_until=ts(issued.previous_valid_until),
    )


@grpc_service
class NodeRegistryServicer(fleet_pb2_grpc.NodeRegistryServiceServicer):
    """The agents' calls: the node is the one the presented join token or credential stands for."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    async def RegisterNode(
        self, request: fleet_pb2.RegisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.RegisterNodeResponse:
        secret = agent_secret(context, join_token=True)
        # organization_id, provider and is_spot of the request are not read: the join token says.
        registration = NodeRegistration(
            hostname=request.hostname,
            provider="",
            gpu_backend=request.gpu_backend,
            driver_version=opt(request.driver_version),
            agent_version=opt(request.agent_version),
            organization_id=None,
            is_spot=False,
            gpus=tuple(
                ReportedGpu(index=g.index, uuid=g.uuid, model=g.model, memory_total_mb=g.memory_total_mb)
                for g in request.gpus
            ),
            cpu_cores=request.cpu_cores,
            ram_mb=request.ram_mb,
            labels=dict(request.labels),
        )
        cmd = commands.RegisterNode(registration, secret, record_public_key=request.record_public_key)
        done: RegisteredNode = await handle(cmd, self.deps)
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
            node_credential=_credential(done.credential) if done.credential else None,
        )

    async def Heartbeat(
        self, request: fleet_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.HeartbeatResponse:
        credential = agent_secret(context)
        if not request.node_id:
            raise InvalidArgument("node_id is required", field="node_id")
        cmd = commands.RecordHeartbeat(
            node_id=uuid_arg(request.node_id, "node_id"),
            unhealthy_gpu_ids=frozenset(uuid_arg(g, "unhealthy_gpu_ids") for g in request.unhealthy_gpu_ids),
            credential=credential,
        )
        return fleet_pb2.HeartbeatResponse(known=await handle(cmd, self.deps))

    async def RotateNodeCredential(
        self, request: fleet_pb2.RotateNodeCredentialRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.NodeCredential:
        issued: IssuedCredential = await handle(
            commands.RotateNodeCredential(agent_secret(context)), self.deps
        )
        return _credential(issued)

    async def AuthenticateNode(
        self, request: fleet_pb2.AuthenticateNodeRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.NodeIdentity:
        node: Node = await handle(commands.AuthenticateNode(request.credential), self.deps)
        return _identity(node)

    async def AuthenticateNodes(
        self, request: fleet_pb2.AuthenticateNodesRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.AuthenticateNodesResponse:
        nodes: list[Node | None] = await handle(
            commands.AuthenticateNodes(tuple(request.credentials)), self.deps
        )
        return fleet_pb2.AuthenticateNodesResponse(
            identities=[_identity(n) if n is not None else fleet_pb2.NodeIdentity() for n in nodes]
        )

    async def GetRecordKeys(
        self, request: fleet_pb2.GetRecordKeysRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.GetRecordKeysResponse:
        ids = tuple(uuid_arg(n, "node_ids") for n in request.node_ids)
        keys: dict[UUID, bytes] = await handle(commands.GetRecordKeys(ids), self.deps)
        return fleet_pb2.GetRecordKeysResponse(
            keys=[fleet_pb2.RecordKey(node_id=str(n), public_key=k) for n, k in sorted(keys.items())]
        )


def _identity(node: Node) -> fleet_pb2.NodeIdentity:
    return fleet_pb2.NodeIdentity(node_id=str(node.id), organization_id=str(node.organization_id or ""))


def _join_token(token: JoinToken, now: datetime, secret: str = "") -> fleet_pb2.JoinToken:
    return fleet_pb2.JoinToken(
        id=str(token.id),
        token=secret,
        organization_id=str(token.profile.organization_id or ""),
        provider=token.profile.provider,
        is_spot=token.profile.is_spot,
        labels=dict(token.profile.labels),
        created_at=ts(token.created_at),
        expires_at=ts(token.expires_at),
        used_at=ts(token.used_at),
        node_id=str(token.node_id or ""),
        revoked_at=ts(token.revoked_at),
        description=token.description,
        state=token.state(now),
    )


@grpc_service
class NodeAdminServicer(fleet_pb2_grpc.NodeAdminServiceServicer):
    """The operator's node administration: the operator token only (identity judges it)."""

    def __init__(self, deps: Dependencies, auth: Authenticator) -> None:
        self.deps, self.auth = deps, auth

    async def CreateJoinToken(
        self, request: fleet_pb2.CreateJoinTokenRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.JoinToken:
        await self.auth.operator(context)
        cmd = commands.CreateJoinToken(
            organization_id=_optional_uuid(request.organization_id, "organization_id"),
            provider=request.provider,
            is_spot=request.is_spot,
            labels=dict(request.labels),
            ttl_seconds=int(request.ttl_seconds),
            description=request.description,
        )
        created: CreatedJoinToken = await handle(cmd, self.deps)
        return _join_token(created.token, created.token.created_at, created.secret)

    async def ListJoinTokens(
        self, request: fleet_pb2.ListJoinTokensRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.ListJoinTokensResponse:
        await self.auth.operator(context)
        now, tokens = await handle(commands.ListJoinTokens(request.include_inactive), self.deps)
        return fleet_pb2.ListJoinTokensResponse(join_tokens=[_join_token(t, now) for t in tokens])

    async def RevokeJoinToken(
        self, request: fleet_pb2.RevokeJoinTokenRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.JoinToken:
        await self.auth.operator(context)
        now, token = await handle(commands.RevokeJoinToken(uuid_arg(request.id, "id")), self.deps)
        return _join_token(token, now)

    async def DecommissionNode(
        self, request: fleet_pb2.DecommissionNodeRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.DecommissionNodeResponse:
        await self.auth.operator(context)
        done: Decommissioned = await handle(
            commands.DecommissionNode(uuid_arg(request.node_id, "node_id")), self.deps
        )
        return fleet_pb2.DecommissionNodeResponse(
            node_id=str(done.node_id),
            revoked_credentials=done.revoked_credentials,
            decommissioned_at=ts(done.at),
        )

    async def ListAllNodes(
        self, request: fleet_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.ListAllNodesResponse:
        await self.auth.operator(context)
        cmd = commands.ListAllNodes(limit=request.limit, cursor=opt(request.cursor))
        page: NodePage = await handle(cmd, self.deps)
        return fleet_pb2.ListAllNodesResponse(
            nodes=[
                fleet_pb2.FleetNode(node=_node(n), organization_id=str(n.node.organization_id or ""))
                for n in page.nodes
            ],
            next_cursor=page.next_cursor or "",
        )
