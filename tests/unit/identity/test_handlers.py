"""Identity's use cases over the in-memory unit of work."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from services.identity.domain.keys import hash_key
from services.identity.domain.model import Membership, Role
from services.identity.service_layer import commands, handlers
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from .fakes import FakeUnitOfWorkFactory


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


async def new_org(uow: FakeUnitOfWorkFactory, email: str = "Owner@Example.com", name: str = "Acme"):
    return await handlers.create_organization(commands.CreateOrganization(name, email, "Ada"), uow)


async def test_create_organization_makes_owner_and_default_key_and_audits(uow) -> None:
    done = await new_org(uow)
    assert done.organization.name == "Acme" and done.owner.email == "owner@example.com"
    assert done.api_key.key.name == "default" and done.api_key.key.scopes == (
        "admin",
        "jobs:read",
        "jobs:write",
    )
    stored = uow.state.keys[done.api_key.key.id]
    assert stored.key_hash == hash_key(done.api_key.secret)
    assert uow.state.memberships == [Membership(done.owner.id, done.organization.id, Role.OWNER)]
    assert [e.action for e in uow.state.audit] == [
        "organization.created",
        "user.created",
        "member.added",
        "api_key.created",
    ]
    assert all(e.actor_user_id is None and e.organization_id == done.organization.id for e in uow.state.audit)


async def test_an_existing_user_is_reused_by_email(uow) -> None:
    first = await new_org(uow, "ada@example.com")
    second = await new_org(uow, " ADA@example.com", name="Other")
    assert second.owner.id == first.owner.id
    assert "user.created" not in [
        e.action for e in uow.state.audit if e.organization_id == second.organization.id
    ]


async def test_invalid_organization_input_writes_nothing(uow) -> None:
    with pytest.raises(InvalidArgument):
        await new_org(uow, name="  ")
    with pytest.raises(InvalidArgument):
        await new_org(uow, email="not-an-email")
    assert uow.units == 0 and not uow.state.organizations


async def test_authenticate_returns_the_principal_and_records_use_once_a_minute(uow) -> None:
    done = await new_org(uow)
    p = await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)
    assert (p.organization_id, p.user_id, p.role, p.api_key_id) == (
        done.organization.id,
        done.owner.id,
        Role.OWNER,
        done.api_key.key.id,
    )
    await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)
    assert uow.state.key_use_writes == 1
    uow.clock += timedelta(seconds=61)
    await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)
    assert uow.state.key_use_writes == 2
    assert uow.state.keys[done.api_key.key.id].last_used == uow.clock


async def test_every_bad_key_fails_with_one_message(uow) -> None:
    done = await new_org(uow)
    expiring = await handlers.create_api_key(
        commands.CreateApiKey(
            await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow),
            "short",
            expires_in_seconds=10,
        ),
        uow,
    )
    uow.clock += timedelta(seconds=10)
    revoked = await handlers.create_api_key(
        commands.CreateApiKey(
            await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow), "r"
        ),
        uow,
    )
    uow.state.keys[revoked.key.id] = revoked.key.revoked(uow.clock)
    unknown = "gpf_" + "x" * 40
    for candidate in ("", "garbage", unknown, expiring.secret, revoked.secret):
        with pytest.raises(Unauthenticated) as err:
            await handlers.authenticate(commands.Authenticate(candidate), uow)
        assert err.value.message == "invalid API key"


async def test_a_key_whose_owner_left_the_organization_is_invalid(uow) -> None:
    done = await new_org(uow)
    uow.state.memberships.clear()
    with pytest.raises(Unauthenticated):
        await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)


async def test_create_api_key_rules(uow) -> None:
    done = await new_org(uow)
    owner = await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)
    ci = await handlers.create_api_key(commands.CreateApiKey(owner, " ci ", ("jobs:read",), 3600), uow)
    assert ci.key.name == "ci" and ci.key.scopes == ("jobs:read",)
    assert ci.key.expires_at == uow.clock + timedelta(hours=1) and ci.key.user_id == owner.user_id
    assert (
        uow.state.audit[-1].action == "api_key.created"
        and uow.state.audit[-1].actor_api_key_id == owner.api_key_id
    )

    narrow = await handlers.authenticate(commands.Authenticate(ci.secret), uow)
    with pytest.raises(PermissionDenied):  # no admin scope
        await handlers.create_api_key(commands.CreateApiKey(narrow, "x"), uow)
    for role in (Role.MEMBER, Role.VIEWER):
        with pytest.raises(PermissionDenied):
            await handlers.create_api_key(commands.CreateApiKey(replace(owner, role=role), "x"), uow)
    for bad in (
        commands.CreateApiKey(owner, ""),
        commands.CreateApiKey(owner, "x", ("nope",)),
        commands.CreateApiKey(owner, "x", (), -5),
    ):
        with pytest.raises(InvalidArgument):
            await handlers.create_api_key(bad, uow)


async def test_list_and_revoke_stay_inside_the_callers_organization(uow) -> None:
    a, b = await new_org(uow, "a@example.com"), await new_org(uow, "b@example.com")
    pa = await handlers.authenticate(commands.Authenticate(a.api_key.secret), uow)
    pb = await handlers.authenticate(commands.Authenticate(b.api_key.secret), uow)
    assert [k.id for k in await handlers.list_api_keys(pb, uow)] == [b.api_key.key.id]
    for key_id in (a.api_key.key.id, uuid4(), None):
        with pytest.raises(NotFound):
            await handlers.revoke_api_key(commands.RevokeApiKey(pb, key_id), uow)
    assert uow.state.keys[a.api_key.key.id].revoked_at is None

    revoked = await handlers.revoke_api_key(commands.RevokeApiKey(pa, a.api_key.key.id), uow)
    assert revoked.revoked_at == uow.clock
    audits = len(uow.state.audit)
    uow.clock += timedelta(minutes=5)
    again = await handlers.revoke_api_key(commands.RevokeApiKey(pa, a.api_key.key.id), uow)
    assert again.revoked_at == revoked.revoked_at and len(uow.state.audit) == audits
    with pytest.raises(Unauthenticated):
        await handlers.authenticate(commands.Authenticate(a.api_key.secret), uow)


async def test_a_member_cannot_revoke_someone_elses_key(uow) -> None:
    done = await new_org(uow)
    owner = await handlers.authenticate(commands.Authenticate(done.api_key.secret), uow)
    member = replace(owner, user_id=uuid4(), role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        await handlers.revoke_api_key(commands.RevokeApiKey(member, done.api_key.key.id), uow)
