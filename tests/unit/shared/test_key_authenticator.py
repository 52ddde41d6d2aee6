"""Authenticator (API keys): keys in use are verified ahead in batches (AuthenticateKeys), so a call
waits for no round trip to identity, and a revoked key is still refused within the one-second bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc

from shared import api_keys
from shared.errors import Unauthenticated
from shared.grpc import Authenticator

OPERATOR_TOKEN = "operator-" + "x" * 32


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """Keys the test minted, valid until removed; every call is recorded."""

    def __init__(self, *, batch: bool = True) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}
        self.single: list[str] = []
        self.batches: list[list[tuple[str, bool]]] = []
        self._batch = batch

    def mint(self) -> str:
        key = api_keys.new_key()
        self.keys[key] = common_pb2.Principal(organization_id=str(uuid.uuid4()), role="owner")
        return key

    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        self.single.append(request.api_key)
        if request.api_key == OPERATOR_TOKEN:
            return common_pb2.Principal(operator=True, operator_name="admin")
        if request.api_key not in self.keys:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return self.keys[request.api_key]

    async def AuthenticateKeys(self, request, context):  # type: ignore[no-untyped-def]
        if not self._batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "an older identity")
        self.batches.append([(k.api_key, k.used) for k in request.keys])
        return identity_pb2.AuthenticateKeysResponse(
            keys=[
                identity_pb2.KeyVerification(valid=True, principal=self.keys[k.api_key])
                if k.api_key in self.keys
                else identity_pb2.KeyVerification()
                for k in request.keys
            ]
        )


@contextlib.asynccontextmanager
async def _identity(fake: FakeIdentity, **options: float) -> AsyncIterator[Authenticator]:
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    auth = Authenticator(f"127.0.0.1:{port}", **options)
    try:
        yield auth
    finally:
        await auth.close()
        await server.stop(None)


async def test_a_key_in_use_is_verified_ahead_and_a_revocation_still_takes_effect_within_the_bound() -> None:
    fake = FakeIdentity()
    key = fake.mint()
    async with _identity(fake, ttl=0.3, refresh_s=0.05) as auth:
        assert (await auth.authenticate(key)).organization_id == fake.keys[key].organization_id
        for _ in range(10):  # used for longer than an answer is trusted: never asked for alone again
            await asyncio.sleep(0.1)
            await auth.authenticate(key)
        assert fake.single == [key]
        assert len(fake.batches) >= 5 and all([k for k, _ in b] == [key] for b in fake.batches)
        # Each batch says whether the key was used since the one before: every 0.1 s, batches every 0.05 s.
        flags = [used for b in fake.batches for _, used in b]
        assert True in flags and False in flags
        del fake.keys[key]  # revoked
        await asyncio.sleep(0.35)
        with pytest.raises(Unauthenticated):
            await auth.authenticate(key)


async def test_a_key_no_longer_used_is_dropped_and_its_next_call_asks_again() -> None:
    fake = FakeIdentity()
    key = fake.mint()
    async with _identity(fake, ttl=0.3, refresh_s=0.05, keep_s=0.2) as auth:
        await auth.authenticate(key)
        await asyncio.sleep(0.6)
        batches = len(fake.batches)
        await asyncio.sleep(0.3)
        assert len(fake.batches) == batches
        assert all(not used for b in fake.batches for _, used in b)  # never used after the first call
        await auth.authenticate(key)
        assert fake.single == [key, key]


async def test_the_operator_token_is_only_cached_never_verified_ahead() -> None:
    fake = FakeIdentity()
    async with _identity(fake, ttl=0.3, refresh_s=0.05) as auth:

        class _Context:
            def invocation_metadata(self):  # type: ignore[no-untyped-def]
                return (("authorization", f"Bearer {OPERATOR_TOKEN}"),)

        assert (await auth.operator(_Context())).operator  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
    assert fake.batches == []


async def test_an_identity_without_the_batch_call_is_asked_per_key(caplog) -> None:
    fake = FakeIdentity(batch=False)
    key = fake.mint()
    async with _identity(fake, ttl=0.2, refresh_s=0.05) as auth:
        with caplog.at_level(logging.WARNING, logger="gpufleet.grpc"):
            for _ in range(4):
                await auth.authenticate(key)
                await asyncio.sleep(0.25)
    assert len(fake.single) == 4
    assert sum("AuthenticateKeys" in r.getMessage() for r in caplog.records) == 1
