"""Scopes, expiry, the key checksum and revocation latency against the real identity service (gRPC over
PostgreSQL): each scope against each of identity's key methods, and a resolving service's
Authenticator refusing a revoked key within a second."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import grpc
import pytest
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc
from prometheus_client import REGISTRY

from shared import api_keys, scopes
from shared.contracts import limits
from shared.errors import Unauthenticated
from shared.grpc import ERROR_FIELD_KEY, Authenticator, with_key

from .conftest import ADMIN_TOKEN, Identity

pytestmark = pytest.mark.integration


async def _org(identity: Identity) -> str:
    created = await identity.stub.CreateOrganization(
        identity_pb2.CreateOrganizationRequest(
            name="Scopes Lab", owner_email=f"owner-{uuid4().hex[:8]}@example.com"
        ),
        metadata=with_key(ADMIN_TOKEN),
    )
    return created.api_key.secret


async def _key(
    identity: Identity, owner: str, *scope: str, expires_in: int = 0
) -> identity_pb2.CreatedApiKey:
    return await identity.stub.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(name="k", scopes=list(scope), expires_in_seconds=expires_in),
        metadata=with_key(owner),
    )


def _calls(stub: identity_pb2_grpc.IdentityServiceStub, victim_id: str) -> dict[str, object]:
    return {
        "IdentityService/GetOrganization": lambda md: stub.GetOrganization(common_pb2.Empty(), metadata=md),
        "IdentityService/ListApiKeys": lambda md: stub.ListApiKeys(common_pb2.Empty(), metadata=md),
        # keys:read is granted by every key that may call CreateApiKey at all (keys:write, admin).
        "IdentityService/CreateApiKey": lambda md: stub.CreateApiKey(
            identity_pb2.CreateApiKeyRequest(name="child", scopes=["keys:read"]), metadata=md
        ),
        "IdentityService/RevokeApiKey": lambda md: stub.RevokeApiKey(
            identity_pb2.RevokeApiKeyRequest(id=victim_id), metadata=md
        ),
    }


@pytest.mark.parametrize("scope", limits.KEY_SCOPES)
async def test_each_scope_against_each_identity_method(identity: Identity, scope: str) -> None:
    owner = await _org(identity)
    holder = (await _key(identity, owner, scope)).secret
    victim = await _key(identity, owner, "jobs:read")
    for method, call in _calls(identity.stub, victim.key.id).items():
        allowed = scopes.allows((scope,), method)
        try:
            await call(with_key(holder))  # type: ignore[operator]
            outcome = "ok"
        except grpc.aio.AioRpcError as exc:
            outcome = exc.code().name
            if outcome == "PERMISSION_DENIED" and not allowed:
                assert scopes.SCOPE_OF[method] in (exc.details() or "")
                assert dict(exc.trailing_metadata() or ()).get(ERROR_FIELD_KEY) == "scopes"
        expected = "ok" if allowed else "PERMISSION_DENIED"
        assert outcome == expected, (scope, method, outcome)


async def test_the_issues_finding_a_jobs_read_key_is_read_only(identity: Identity) -> None:
    owner = await _org(identity)
    reader = (await _key(identity, owner, "jobs:read")).secret
    assert (await identity.stub.GetOrganization(common_pb2.Empty(), metadata=with_key(reader))).id
    for call in (
        identity.stub.CreateApiKey(identity_pb2.CreateApiKeyRequest(name="x"), metadata=with_key(reader)),
        identity.stub.ListApiKeys(common_pb2.Empty(), metadata=with_key(reader)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_key_without_scopes_is_every_scope(identity: Identity) -> None:
    owner = await _org(identity)
    plain = await _key(identity, owner)
    assert list(plain.key.scopes) == list(limits.KEY_SCOPES)


async def test_an_expiring_key_cannot_mint_a_key_that_outlives_it(identity: Identity) -> None:
    owner = await _org(identity)
    hour = (await _key(identity, owner, expires_in=3600)).secret
    for lifetime in (0, 7200):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _key(identity, hour, "jobs:read", expires_in=lifetime)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "cannot outlive it" in (err.value.details() or "")
    assert (await _key(identity, hour, "jobs:read", expires_in=1800)).key.expires_at


async def test_a_restricted_key_cannot_mint_scopes_it_lacks(identity: Identity) -> None:
    owner = await _org(identity)
    manager = (await _key(identity, owner, "keys:write", "jobs:read")).secret
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _key(identity, manager, "jobs:write")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "jobs:write" in (
        err.value.details() or ""
    )
    inherited = await _key(identity, manager)
    assert list(inherited.key.scopes) == ["jobs:read", "keys:read", "keys:write"]


async def test_a_checksum_failing_key_is_refused_without_a_look_up(identity: Identity) -> None:
    owner = await _org(identity)
    assert api_keys.checksummed(owner)
    typo = owner[:10] + ("a" if owner[10] != "a" else "b") + owner[11:]

    def malformed() -> float:
        sample = REGISTRY.get_sample_value(
            "gpufleet_identity_authentications_total", {"outcome": "malformed"}
        )
        return sample or 0.0

    before = malformed()
    for bad in (typo, owner[:-1], owner + "x"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity.stub.Authenticate(identity_pb2.AuthenticateRequest(api_key=bad))
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
    assert malformed() - before == 3  # "malformed": refused before any look-up


async def test_revocation_is_refused_by_a_resolving_service_within_a_second(identity: Identity) -> None:
    """What every other service does: an Authenticator with the default cache, in front of identity."""
    owner = await _org(identity)
    doomed = await _key(identity, owner, "jobs:read")
    auth = Authenticator(identity.target)  # the default cache: what the runtime gives every service
    try:
        assert (await auth.authenticate(doomed.secret)).api_key_id == doomed.key.id  # now cached
        await identity.stub.RevokeApiKey(
            identity_pb2.RevokeApiKeyRequest(id=doomed.key.id), metadata=with_key(owner)
        )
        revoked_at = time.monotonic()
        deadline = revoked_at + 1.0
        while True:
            try:
                await auth.authenticate(doomed.secret)
            except Unauthenticated:
                break
            assert time.monotonic() < deadline, "a revoked key was still accepted after a second"
            await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at <= 1.05
    finally:
        await auth.close()
