"""Node identity, the operator's REST face (fleet's NodeAdminService; docs/agent-identity.md).

``/v1/admin/join-tokens`` creates, lists and revokes the one-time, expiring join tokens that fix what a
node is (the organization it is dedicated to or the shared pool, provider, spot, labels); an agent
exchanges one at its first registration for its own node credential. ``/v1/admin/nodes/{id}/decommission``
revokes a node's credentials and takes it offline. ``/v1/admin/fleet`` is the whole fleet (every
organization's nodes, GPUs and holds; fleet's nodes merged with the scheduler's allocations). The operator token goes as ``Authorization: Bearer
<token>``; the gateway forwards it and fleet has identity judge it (an API key there is 403).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, policy_pb2
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints.auth import downstream
from services.gateway.entrypoints.responses_admin import FleetOut, fleet_out
from services.gateway.entrypoints.routes import problem_responses
from services.gateway.entrypoints.routes.admin import operator_scheme, policy_stub
from shared.contracts import limits
from shared.errors import Unauthenticated
from shared.grpc import with_key

router = APIRouter(tags=["nodes (operator)"])


class NodeAdminCall:
    def __init__(self, down: Downstream, token: str, request: Request) -> None:
        self.stub = fleet_pb2_grpc.NodeAdminServiceStub(down.channels["fleet"])
        self.policy = policy_stub(down)
        request_id = str(request.scope.get("state", {}).get("request_id", ""))
        self.call: dict[str, Any] = {
            "metadata": (*with_key(token), ("x-request-id", request_id)),
            "timeout": down.call_timeout,
        }


async def node_admin_call(
    request: Request,
    down: Annotated[Downstream, Depends(downstream)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(operator_scheme)],
) -> NodeAdminCall:
    if bearer is None or not bearer.credentials:
        raise Unauthenticated("the operator token is required (Authorization: Bearer <token>)")
    return NodeAdminCall(down, bearer.credentials, request)


NodeAdminDep = Annotated[NodeAdminCall, Depends(node_admin_call)]
Id = Annotated[str, Path(max_length=36, description="The id (a UUID).")]
LabelMap = dict[Annotated[str, Field(min_length=1, max_length=63)], Annotated[str, Field(max_length=63)]]


class JoinTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    organization_id: str | None = Field(
        default=None,
        max_length=36,
        description="The organization the node is dedicated to; absent: shared pool.",
    )
    provider: str = Field(default="on-prem", min_length=1, max_length=limits.MAX_PROVIDER)
    is_spot: bool = False
    labels: LabelMap = Field(default_factory=dict, max_length=32, description="Fixed labels of the node.")
    ttl_seconds: int = Field(
        default=limits.DEFAULT_JOIN_TOKEN_TTL_SECONDS,
        ge=limits.MIN_JOIN_TOKEN_TTL_SECONDS,
        le=limits.MAX_JOIN_TOKEN_TTL_SECONDS,
    )
    description: str = Field(default="", max_length=limits.MAX_JOIN_TOKEN_DESCRIPTION)


class JoinTokenOut(BaseModel):
    id: str
    token: str | None = Field(
        default=None, description="The secret (gpfj_...): only in the answer to its creation."
    )
    organization_id: str | None
    provider: str
    is_spot: bool
    labels: dict[str, str]
    description: str
    state: str = Field(description="active | used | expired | revoked")
    created_at: str
    expires_at: str
    used_at: str | None
    node_id: str | None
    revoked_at: str | None


class JoinTokenList(BaseModel):
    join_tokens: list[JoinTokenOut]


class DecommissionOut(BaseModel):
    node_id: str
    revoked_credentials: int
    decommissioned_at: str


def _out(t: fleet_pb2.JoinToken) -> JoinTokenOut:
    return JoinTokenOut(
        id=t.id,
        token=t.token or None,
        organization_id=t.organization_id or None,
        provider=t.provider,
        is_spot=t.is_spot,
        labels=dict(t.labels),
        description=t.description,
        state=t.state,
        created_at=t.created_at,
        expires_at=t.expires_at,
        used_at=t.used_at or None,
        node_id=t.node_id or None,
        revoked_at=t.revoked_at or None,
    )


@router.post(
    "/v1/admin/join-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=JoinTokenOut,
    responses=problem_responses(422),
    summary="Create a one-time join token for a node (operator); the secret is shown once",
)
async def create_join_token(body: JoinTokenCreate, op: NodeAdminDep) -> JoinTokenOut:
    request = fleet_pb2.CreateJoinTokenRequest(
        organization_id=body.organization_id or "",
        provider=body.provider,
        is_spot=body.is_spot,
        labels=body.labels,
        ttl_seconds=body.ttl_seconds,
        description=body.description,
    )
    return _out(await op.stub.CreateJoinToken(request, **op.call))


@router.get(
    "/v1/admin/join-tokens",
    response_model=JoinTokenList,
    responses=problem_responses(),
    summary="Join tokens, newest first (operator); secrets are never shown again",
)
async def list_join_tokens(
    op: NodeAdminDep,
    include_inactive: Annotated[bool, Query(description="Also used, expired and revoked ones.")] = False,
) -> JoinTokenList:
    reply = await op.stub.ListJoinTokens(
        fleet_pb2.ListJoinTokensRequest(include_inactive=include_inactive), **op.call
    )
    return JoinTokenList(join_tokens=[_out(t) for t in reply.join_tokens])


@router.delete(
    "/v1/admin/join-tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422),
    summary="Revoke a join token that was not used yet (operator)",
)
async def revoke_join_token(token_id: Id, op: NodeAdminDep) -> Response:
    await op.stub.RevokeJoinToken(fleet_pb2.RevokeJoinTokenRequest(id=token_id), **op.call)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/admin/nodes/{node_id}/decommission",
    response_model=DecommissionOut,
    responses=problem_responses(404, 422),
    summary="Decommission a node: revoke its credentials, take it and its GPUs offline (operator)",
)
async def decommission_node(node_id: Id, op: NodeAdminDep) -> DecommissionOut:
    reply = await op.stub.DecommissionNode(fleet_pb2.DecommissionNodeRequest(node_id=node_id), **op.call)
    return DecommissionOut(
        node_id=reply.node_id,
        revoked_credentials=reply.revoked_credentials,
        decommissioned_at=reply.decommissioned_at,
    )


@router.get(
    "/v1/admin/fleet",
    response_model=FleetOut,
    responses=problem_responses(),
    summary="The whole fleet (operator): every node with its GPUs, status and the job holding each",
)
async def whole_fleet(op: NodeAdminDep) -> FleetOut:
    nodes: list[fleet_pb2.FleetNode] = []
    cursor = ""
    while True:
        page = await op.stub.ListAllNodes(
            fleet_pb2.ListNodesRequest(limit=limits.MAX_PAGE, cursor=cursor), **op.call
        )
        nodes.extend(page.nodes)
        cursor = page.next_cursor
        if not cursor:
            break
    held = await op.policy.ListAllAllocations(policy_pb2.ListAllAllocationsRequest(), **op.call)
    return fleet_out(nodes, list(held.allocations))
