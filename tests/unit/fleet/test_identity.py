"""Node identity rules without I/O: secret formats, join token states, credential expiry, ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.fleet.domain.identity import (
    ClaimedGpu,
    JoinToken,
    NodeCredential,
    authenticated,
    check_gpu_claims,
    join_token_profile,
    join_token_ttl,
    require_own_node,
)
from shared import api_keys, node_identity
from shared.errors import InvalidArgument, PermissionDenied, Unauthenticated

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_secret_formats_are_checksummed_distinct_and_never_an_api_key() -> None:
    join, cred = node_identity.new_join_token(), node_identity.new_credential()
    assert node_identity.is_join_token(join) and not node_identity.is_credential(join)
    assert node_identity.is_credential(cred) and not node_identity.is_join_token(cred)
    assert not api_keys.well_formed(join) and not api_keys.well_formed(cred)
    typo = cred[:-1] + ("A" if cred[-1] != "A" else "B")
    assert not node_identity.is_credential(typo)
    assert not node_identity.is_credential(api_keys.new_key())
    assert node_identity.digest(cred) != node_identity.digest(join) and len(node_identity.digest(cred)) == 32


def _token(ttl: timedelta = timedelta(hours=1)) -> JoinToken:
    return JoinToken.create(b"h" * 32, join_token_profile(None, "", False, {}), NOW, ttl)


def test_a_join_token_is_used_once_before_it_expires_unless_revoked() -> None:
    token = _token()
    assert token.profile.provider == "on-prem" and token.state(NOW) == "active"
    node = uuid4()
    token.use(node, NOW + timedelta(minutes=1))
    assert token.state(NOW) == "used" and token.node_id == node
    with pytest.raises(Unauthenticated):
        token.use(uuid4(), NOW)
    expired = _token()
    assert expired.state(NOW + timedelta(hours=1)) == "expired"
    with pytest.raises(Unauthenticated):
        expired.use(uuid4(), NOW + timedelta(hours=2))
    revoked = _token()
    assert revoked.revoke(NOW) and not revoked.revoke(NOW) and revoked.state(NOW) == "revoked"
    with pytest.raises(Unauthenticated):
        revoked.use(uuid4(), NOW)


def test_join_token_bounds() -> None:
    assert join_token_ttl(0) == timedelta(hours=1)
    for bad in (59, 7 * 24 * 3600 + 1):
        with pytest.raises(InvalidArgument):
            join_token_ttl(bad)
    with pytest.raises(InvalidArgument):
        join_token_profile(None, "x" * 65, False, {})
    with pytest.raises(InvalidArgument):
        join_token_profile(None, "aws", False, {"bad key": "v"})


def test_a_rotated_credential_overlaps_then_expires_and_a_revoked_one_is_refused_at_once() -> None:
    cred = NodeCredential.issue(uuid4(), b"c" * 32, NOW)
    assert authenticated(cred, NOW + timedelta(days=400)) is cred  # no expiry until rotated
    until = cred.retire(NOW, timedelta(seconds=60))
    assert until == NOW + timedelta(seconds=60)
    assert cred.retire(NOW + timedelta(seconds=30), timedelta(seconds=60)) == until  # never extended
    assert cred.valid(NOW + timedelta(seconds=59)) and not cred.valid(until)
    with pytest.raises(Unauthenticated):
        authenticated(cred, until)
    other = NodeCredential.issue(uuid4(), b"d" * 32, NOW)
    assert other.revoke(NOW) and not other.valid(NOW)
    with pytest.raises(Unauthenticated):
        authenticated(None, NOW)


def test_ownership_rules() -> None:
    node, other = uuid4(), uuid4()
    require_own_node(node, node)
    with pytest.raises(PermissionDenied):
        require_own_node(node, other)
    check_gpu_claims(node, [ClaimedGpu("GPU-1", node, False), ClaimedGpu("GPU-2", other, True)])
    with pytest.raises(PermissionDenied) as err:
        check_gpu_claims(node, [ClaimedGpu("GPU-3", other, False)])
    assert err.value.field == "gpus"
