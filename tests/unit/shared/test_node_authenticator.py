"""NodeAuthenticator: against a fleet target that does not serve NodeRegistryService (fleet's tenant listener
when its agent API has a listener of its own) every agent call is UNAVAILABLE, and the log names the setting;
credentials in use are verified ahead in batches, within the revocation bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from gpufleet.v1 import fleet_pb2_grpc

from shared import node_identity
from shared.errors import Unauthenticated, Unavailable
from shared.grpc import NodeAuthenticator
from tests.fake_node_registry import FakeNodeRegistry


class _Context:
    def __init__(self, credential: str) -> None:
        self._metadata = (("authorization", f"Bearer {credential}"),)

    def invocation_metadata(self):  # type: ignore[no-untyped-def]
        return self._metadata


async def test_a_fleet_target_without_the_registry_is_unavailable_and_names_the_setting(caplog) -> None:
    server = grpc.aio.server()  # no services: what a tenant listener answers an agent RPC with
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    auth = NodeAuthenticator(f"127.0.0.1:{port}")
    try:
        with caplog.at_level(logging.ERROR, logger="gpufleet.grpc"), pytest.raises(Unavailable) as err:
            await auth.node_of(_Context(node_identity.new_credential()))  # type: ignore[arg-type]
    finally:
        await auth.close()
        await server.stop(None)
    assert "UNIMPLEMENTED" in str(err.value)
    assert any("GPUFLEET_FLEET_AGENT_GRPC_TARGET" in r.getMessage() for r in caplog.records)


@contextlib.asynccontextmanager
async def _fleet(registry: FakeNodeRegistry, **options: float) -> AsyncIterator[NodeAuthenticator]:
    server = grpc.aio.server()
    fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    auth = NodeAuthenticator(f"127.0.0.1:{port}", **options)  # type: ignore[arg-type]
    try:
        yield auth
    finally:
        await auth.close()
        await server.stop(None)


async def test_a_credential_in_use_is_verified_ahead_and_a_revocation_still_takes_effect() -> None:
    registry = FakeNodeRegistry()
    credential, node = node_identity.new_credential(), uuid.uuid4()
    registry.nodes[credential] = node
    async with _fleet(registry, ttl=0.3, refresh_s=0.05) as auth:
        assert await auth.node_of(_Context(credential)) == node  # type: ignore[arg-type]
        # Used for longer than the cache's bound, it is never asked for one by one again: the
        # batch keeps its verification young.
        for _ in range(10):
            await asyncio.sleep(0.1)
            assert await auth.node_of(_Context(credential)) == node  # type: ignore[arg-type]
        assert registry.single == [credential]
        assert len(registry.batches) >= 5 and all(b == [credential] for b in registry.batches)
        # Revoked: refused within the bound (here at the next batch), and not cached as refused.
        del registry.nodes[credential]
        await asyncio.sleep(0.3)
        with pytest.raises(Unauthenticated):
            await auth.node_of(_Context(credential))  # type: ignore[arg-type]


async def test_a_credential_no_longer_used_is_no_longer_verified_ahead() -> None:
    registry = FakeNodeRegistry()
    credential, node = node_identity.new_credential(), uuid.uuid4()
    registry.nodes[credential] = node
    async with _fleet(registry, ttl=0.3, refresh_s=0.05, keep_s=0.2) as auth:
        assert await auth.node_of(_Context(credential)) == node  # type: ignore[arg-type]
        await asyncio.sleep(0.6)
        batches = len(registry.batches)
        await asyncio.sleep(0.3)
        assert len(registry.batches) == batches  # dropped after keep_s unused: fleet is not asked
        assert await auth.node_of(_Context(credential)) == node  # type: ignore[arg-type]
        assert registry.single == [credential, credential]  # so its next call asks for it again


async def test_a_fleet_without_the_batch_call_is_asked_per_credential(caplog) -> None:
    registry = FakeNodeRegistry(batch=False)
    credential, node = node_identity.new_credential(), uuid.uuid4()
    registry.nodes[credential] = node
    async with _fleet(registry, ttl=0.2, refresh_s=0.05) as auth:
        with caplog.at_level(logging.WARNING, logger="gpufleet.grpc"):
            for _ in range(4):
                assert await auth.node_of(_Context(credential)) == node  # type: ignore[arg-type]
                await asyncio.sleep(0.25)
    assert len(registry.single) == 4  # each call past the bound asked again, as before
    assert sum("AuthenticateNodes" in r.getMessage() for r in caplog.records) == 1
