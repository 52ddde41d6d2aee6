"""NodeAuthenticator against a fleet target that does not serve NodeRegistryService (fleet's tenant listener
when its agent API has a listener of its own): every agent call is UNAVAILABLE, and the log names the setting."""

from __future__ import annotations

import logging

import grpc
import pytest

from shared import node_identity
from shared.errors import Unavailable
from shared.grpc import NodeAuthenticator


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
