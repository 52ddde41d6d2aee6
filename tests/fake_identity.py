"""An in-process IdentityService for integration tests of other services: test keys -> principals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from gpufleet.v1 import common_pb2, identity_pb2_grpc

from shared import api_keys
from shared.embedded.ports import free_port
from shared.grpc import serve


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}

    def key(self, org: uuid.UUID, role: str = "member") -> tuple[tuple[str, str], ...]:
        """Metadata carrying a fresh key of ``org`` with ``role``."""
        secret = api_keys.new_key()
        self.keys[secret] = common_pb2.Principal(
            organization_id=str(org), user_id=str(uuid.uuid4()), role=role, api_key_id=str(uuid.uuid4())
        )
        return (("authorization", f"Bearer {secret}"),)

    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        principal = self.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return principal


@asynccontextmanager
async def grpc_server(register: list, names: list[str]) -> AsyncIterator[str]:
    """Serve ``register`` on a free loopback port; yields the target."""
    port = free_port()
    server, _ = await serve(f"127.0.0.1:{port}", register, names)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
