"""Validation of names, emails, scopes and lifetimes; key state; role rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.identity.domain import model
from services.identity.domain.model import ApiKey, AuthOutcome, Principal, Role
from services.identity.domain.operator import OperatorToken
from shared.contracts import limits
from shared.errors import InvalidArgument, PermissionDenied

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def key(**overrides) -> ApiKey:
    fields = {
        "id": uuid4(),
        "organization_id": uuid4(),
        "user_id": uuid4(),
        "name": "k",
        "prefix": "gpf_abcdefgh",
        "key_hash": "0" * 64,
        "scopes": model.SCOPES,
        "created_at": NOW,
    }
    return ApiKey(**{**fields, **overrides})


def principal(role: Role = Role.OWNER, scopes: tuple[str, ...] = model.SCOPES, **overrides) -> Principal:
    fields = {
        "organization_id": uuid4(),
        "user_id": uuid4(),
        "role": role,
        "api_key_id": uuid4(),
        "scopes": scopes,
    }
    return Principal(**{**fields, **overrides})


def test_organization_name_is_trimmed_and_bounded() -> None:
    assert model.organization_name("  Acme  ") == "Acme"
    assert model.organization_name("x" * 200) == "x" * 200
    for bad in ("", "   ", "x" * 201, "a\nb"):
        with pytest.raises(InvalidArgument) as err:
            model.organization_name(bad)
        assert err.value.field == "name"


def test_email_is_lowercased_and_checked() -> None:
    assert model.email_address("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    for bad in (
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a da@example.com",
        "a@b@example.com",
        "a" * 250 + "@example.com",
    ):
        with pytest.raises(InvalidArgument) as err:
            model.email_address(bad)
        assert err.value.field == "owner_email"


def test_person_name_is_optional() -> None:
    assert model.person_name("  ") is None
    assert model.person_name(" Ada ") == "Ada"
    with pytest.raises(InvalidArgument):
        model.person_name("x" * 201)


def test_key_name_bounds() -> None:
    assert model.key_name(" ci ") == "ci"
    for bad in ("", " ", "x" * 101):
        with pytest.raises(InvalidArgument):
            model.key_name(bad)


def test_scopes_default_to_all_and_reject_unknown() -> None:
    assert model.requested_scopes([]) == limits.KEY_SCOPES
    assert model.requested_scopes(["jobs:write", "jobs:read", "jobs:read"]) == ("jobs:read", "jobs:write")
    with pytest.raises(InvalidArgument) as err:
        model.requested_scopes(["jobs:read", "root"])
    assert err.value.field == "scopes" and "root" in err.value.message


def test_key_lifetime() -> None:
    assert model.key_lifetime(0) is None
    assert model.key_lifetime(3600) == timedelta(hours=1)
    with pytest.raises(InvalidArgument):
        model.key_lifetime(-1)
    with pytest.raises(InvalidArgument):
        model.key_lifetime(int(model.MAX_KEY_LIFETIME.total_seconds()) + 1)


def test_key_usability() -> None:
    assert key().usable_at(NOW)
    assert key(expires_at=NOW + timedelta(seconds=1)).usable_at(NOW)
    assert not key(expires_at=NOW).usable_at(NOW)
    assert not key(revoked_at=NOW - timedelta(days=1)).usable_at(NOW)


def test_why_a_key_is_refused() -> None:
    assert key().refusal_at(NOW) is None
    assert key(expires_at=NOW).refusal_at(NOW) == AuthOutcome.EXPIRED
    assert key(revoked_at=NOW).refusal_at(NOW) == AuthOutcome.REVOKED
    # Revoked and expired at once reads as revoked: the owner's act is the more telling cause.
    assert key(expires_at=NOW, revoked_at=NOW).refusal_at(NOW) == AuthOutcome.REVOKED


def test_limits_are_the_shared_public_ones() -> None:
    assert model.SCOPES == limits.KEY_SCOPES and model.KEY_NAME_MAX == limits.MAX_KEY_NAME
    assert model.MAX_KEY_LIFETIME == timedelta(seconds=limits.MAX_KEY_LIFETIME_SECONDS)
    model.requested_scopes(["jobs:read"] * limits.MAX_KEY_SCOPES)
    with pytest.raises(InvalidArgument) as err:
        model.requested_scopes(["jobs:read"] * (limits.MAX_KEY_SCOPES + 1))
    assert err.value.field == "scopes"


def test_the_operator_token_admits_only_itself() -> None:
    gate = OperatorToken("operator-secret-0123")
    assert gate.admits("operator-secret-0123")
    for presented in (None, "", "operator-secret-012", "operator-secret-01234", "OPERATOR-SECRET-0123"):
        assert not gate.admits(presented)
    assert "operator-secret" not in repr(gate)


def test_use_is_recorded_at_most_once_a_minute() -> None:
    assert key().use_worth_recording(NOW)
    assert not key(last_used=NOW - timedelta(seconds=59)).use_worth_recording(NOW)
    assert key(last_used=NOW - timedelta(seconds=60)).use_worth_recording(NOW)


def test_revocation_keeps_the_first_time() -> None:
    first = key().revoked(NOW)
    assert first.revoked_at == NOW
    assert first.revoked(NOW + timedelta(hours=1)).revoked_at == NOW


def test_issue_key_keeps_only_the_hash_on_the_key() -> None:
    org, user = uuid4(), uuid4()
    issued, secret = model.issue_key(org, user, "ci", ("jobs:read",), NOW, timedelta(days=1))
    assert issued.organization_id == org and issued.user_id == user and issued.scopes == ("jobs:read",)
    assert issued.expires_at == NOW + timedelta(days=1)
    assert secret not in repr(issued) and issued.prefix == secret[:12]
    assert model.issue_key(org, user, "ci", model.SCOPES, NOW)[0].expires_at is None


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_manage_keys(role: Role) -> None:
    principal(role).require_key_manager()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_do_not_create_keys(role: Role) -> None:
    with pytest.raises(PermissionDenied):
        principal(role).require_key_manager()


def test_a_key_without_keys_write_cannot_create_keys_nor_grant_more_than_it_has() -> None:
    with pytest.raises(PermissionDenied) as err:
        principal(Role.OWNER, scopes=("jobs:read", "jobs:write", "keys:read")).require_key_manager()
    assert "keys:write" in err.value.message
    narrow = principal(Role.ADMIN, scopes=("keys:write", "jobs:read"))
    narrow.require_key_manager()
    narrow.require_grantable(("jobs:read", "keys:read"))  # keys:write includes keys:read
    with pytest.raises(PermissionDenied) as err:
        narrow.require_grantable(("jobs:read", "jobs:write", "admin"))
    assert err.value.message.endswith("admin, jobs:write")


def test_admin_grants_every_scope_and_an_unscoped_key_is_unrestricted() -> None:
    principal(Role.OWNER, scopes=("admin",)).require_grantable(limits.KEY_SCOPES)
    principal(Role.OWNER, scopes=()).require_grantable(limits.KEY_SCOPES)
    principal(Role.OWNER, scopes=()).require_key_manager()


def test_a_key_made_without_scopes_gets_what_its_maker_has() -> None:
    assert principal(Role.OWNER, scopes=("admin",)).scopes_to_grant(()) == limits.KEY_SCOPES
    assert principal(Role.OWNER, scopes=()).scopes_to_grant(()) == limits.KEY_SCOPES
    assert principal(Role.OWNER, scopes=("keys:write", "jobs:write")).scopes_to_grant(()) == (
        "jobs:read",
        "jobs:write",
        "keys:read",
        "keys:write",
    )
    assert principal(Role.OWNER).scopes_to_grant(("jobs:read",)) == ("jobs:read",)


def test_an_expiring_key_cannot_mint_a_key_that_outlives_it() -> None:
    expiring = Principal(uuid4(), uuid4(), Role.OWNER, uuid4(), model.SCOPES, NOW + timedelta(hours=1))
    expiring.require_outlived_by(timedelta(minutes=59), NOW)
    expiring.require_outlived_by(timedelta(hours=1), NOW)  # expiring together is not outliving
    for lifetime in (None, timedelta(hours=1, seconds=1)):
        with pytest.raises(PermissionDenied) as err:
            expiring.require_outlived_by(lifetime, NOW)
        assert err.value.field == "expires_in_seconds"
        assert "at most 3600" in err.value.message and "2025-01-01T01:00:00+00:00" in err.value.message
    principal(Role.OWNER).require_outlived_by(None, NOW)  # a key that never expires may mint any


def test_revocation_rules() -> None:
    member = principal(Role.MEMBER)
    member.require_may_revoke(key(user_id=member.user_id))  # one's own key
    with pytest.raises(PermissionDenied):
        member.require_may_revoke(key())
    principal(Role.ADMIN).require_may_revoke(key())
