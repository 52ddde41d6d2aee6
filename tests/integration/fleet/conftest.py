"""Fleet in-process: its gRPC servicers on a free port over the real PostgreSQL, with a fake identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc, identity_pb2_grpc

from services.fleet.bootstrap import FleetApp, bootstrap
from services.fleet.config import FleetSettings
from shared import api_keys
from shared.db import Database
from shared.embedded.postgres import free_port
from shared.grpc import Authenticator, channel, serve, with_key

OPERATOR_TOKEN = "test-operator-token"
OPERATOR = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """Identity's Authenticate only: a test key maps to a principal of its organization."""

    def __init__(self) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}

    def new_key(self, organization_id: UUID | None = None) -> str:
        key = api_keys.new_key()
        self.keys[key] = common_pb2.Principal(
            organization_id=str(organization_id or uuid4()),
            user_id=str(uuid4()),
            role="member",
            api_key_id=str(uuid4()),
        )
        return key

    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        if request.api_key == OPERATOR_TOKEN:
            return common_pb2.Principal(operator=True)
        principal = self.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return principal


@dataclass
class Fleet:
    app: FleetApp
    db: Database
    settings: FleetSettings
    identity: FakeIdentity
    registry: fleet_pb2_grpc.NodeRegistryServiceStub
    inventory: fleet_pb2_grpc.FleetServiceStub
    admin: fleet_pb2_grpc.NodeAdminServiceStub
    # node id -> the credential its join answered (what its agent would keep)
    credentials: dict[str, str] = field(default_factory=dict)

    async def join_token(self, **fields) -> str:  # type: ignore[no-untyped-def]
        """A fresh join token from the operator (CreateJoinTokenRequest's fields)."""
        return (
            await self.admin.CreateJoinToken(fleet_pb2.CreateJoinTokenRequest(**fields), metadata=OPERATOR)
        ).token

    async def join(self, req: fleet_pb2.RegisterNodeRequest, **fields) -> fleet_pb2.RegisterNodeResponse:  # type: ignore[no-untyped-def]
        """Register ``req`` as a new node with a join token made for it. What the node is comes from
        the token: by default what the request asserts (the operator says the same), or ``fields``."""
        profile = {
            "organization_id": req.organization_id,
            "is_spot": req.is_spot,
            "provider": req.provider,
            **fields,
        }
        token = await self.join_token(**profile)
        resp = await self.registry.RegisterNode(req, metadata=with_key(token))
        assert resp.node_credential.credential.startswith("gpfn_")
        self.credentials[resp.node_id] = resp.node_credential.credential
        return resp

    def node(self, node_id: str) -> tuple[tuple[str, str], ...]:
        """The metadata of that node's agent (its credential)."""
        return with_key(self.credentials[node_id])


@pytest.fixture(scope="session")
async def identity() -> AsyncIterator[tuple[FakeIdentity, str]]:
    fake = FakeIdentity()
    target = f"127.0.0.1:{free_port()}"
    server, _ = await serve(
        target,
        [(identity_pb2_grpc.add_IdentityServiceServicer_to_server, fake)],
        ["gpufleet.v1.IdentityService"],
    )
    yield fake, target
    await server.stop(None)


@pytest.fixture(scope="session")
async def fleet(migrate_schema, identity) -> AsyncIterator[Fleet]:
    fake, identity_target = identity
    url = await migrate_schema("fleet")
    settings = FleetSettings(
        fleet_database_url=url,
        kafka_bootstrap_servers="127.0.0.1:1",
        identity_grpc_target=identity_target,
        fleet_unknown_gpu_price_per_hour="0.1500",
        fleet_heartbeat_interval_seconds=7,
    )
    db = Database(url, "fleet", pool_size=4)
    auth = Authenticator(identity_target, ttl=0)
    app = bootstrap(settings, db=db, auth=auth)
    target = f"127.0.0.1:{free_port()}"
    # Every service on one server, as the runtime does when no agent listener is configured.
    services = [*app.grpc_services, *app.agent_grpc_services]
    server, _ = await serve(
        target,
        [(add, servicer) for add, servicer, _ in services],
        [name for _, _, name in services],
    )
    client = channel(target)
    yield Fleet(
        app,
        db,
        settings,
        fake,
        fleet_pb2_grpc.NodeRegistryServiceStub(client),
        fleet_pb2_grpc.FleetServiceStub(client),
        fleet_pb2_grpc.NodeAdminServiceStub(client),
    )
    await client.close()
    await server.stop(None)
    await auth.close()
    await db.dispose()
