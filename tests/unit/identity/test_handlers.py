"""Identity's use cases over the in-memory unit of work, through the one ``handle`` entry."""

from __future__ import annotations

import typing
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from services.identity.domain.keys import hash_key
from services.identity.domain.model import AuthOutcome, Membership, Principal, Role
from services.identity.service_layer import commands, handlers
from services.identity.service_layer.handlers import Dependencies, handle
from shared.contracts import limits
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from .fakes import OPERATOR_TOKEN, FakeMetrics, FakeUnitOfWorkFactory, fake_dependencies


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def deps(uow: FakeUnitOfWorkFactory, metrics: FakeMetrics) -> Dependencies:
    return fake_dependencies(uow, metrics)


async def new_org(
    deps: Dependencies, email: str = "Owner@Example.com", name: str = "Acme"
) -> handlers.CreatedOrganization:
    return await handle(commands.CreateOrganization(name, email, "Ada", operator_token=OPERATOR_TOKEN), deps)


async def login(deps: Dependencies, secret: str) -> Principal:
    return await handle(commands.Authenticate(secret), deps)


def test_every_command_has_exactly_one_handler() -> None:
    assert set(handlers.HANDLERS) == set(typing.get_args(commands.Command))


async def test_create_organization_makes_owner_and_default_key_and_audits(deps, uow) -> None:
    done = await new_org(deps)
    assert done.organization.name == "Acme" and done.owner.email == "owner@example.com"
    assert done.api_key.key.name == "default" and done.api_key.key.scopes == limits.KEY_SCOPES
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


@pytest.mark.parametrize("token", [None, "", "wrong-operator-token", OPERATOR_TOKEN + "x"])
async def test_only_the_operator_creates_organizations(deps, uow, token) -> None:
    with pytest.raises(Unauthenticated) as err:
        await handle(commands.CreateOrganization("Acme", "a@example.com", operator_token=token), deps)
    assert err.value.message == "a valid operator token is required"
    assert uow.units == 0 and not uow.state.organizations


async def test_the_operator_is_checked_before_the_input(deps) -> None:
    # A caller without the token must not learn which inputs would be accepted.
    with pytest.raises(Unauthenticated):
        await handle(commands.CreateOrganization("", "not-an-email"), deps)


async def test_an_existing_user_is_reused_by_email(deps, uow) -> None:
    first = await new_org(deps, "ada@example.com")
    second = await new_org(deps, " ADA@example.com", name="Other")
    assert second.owner.id == first.owner.id
    assert "user.created" not in [
        e.action for e in uow.state.audit if e.organization_id == second.organization.id
    ]


async def test_invalid_organization_input_writes_nothing(deps, uow) -> None:
    with pytest.raises(InvalidArgument):
        await new_org(deps, name="  ")
    with pytest.raises(InvalidArgument):
        await new_org(deps, email="not-an-email")
    assert uow.units == 0 and not uow.state.organizations


async def test_authenticate_returns_the_principal_and_records_use_once_a_minute(deps, uow, metrics) -> None:
    done = await new_org(deps)
    p = await login(deps, done.api_key.secret)
    assert (p.organization_id, p.user_id, p.role, p.api_key_id) == (
        done.organization.id,
        done.owner.id,
        Role.OWNER,
        done.api_key.key.id,
    )
    await login(deps, done.api_key.secret)
    assert uow.state.key_use_writes == 1
    uow.clock += timedelta(seconds=61)
    await login(deps, done.api_key.secret)
    assert uow.state.key_use_writes == 2
    assert uow.state.keys[done.api_key.key.id].last_used == uow.clock
    assert metrics.outcomes == [AuthOutcome.OK] * 3


async def test_every_bad_key_fails_with_one_message_and_is_counted_by_cause(deps, uow, metrics) -> None:
    done = await new_org(deps)
    expiring = await handle(
        commands.CreateApiKey(await login(deps, done.api_key.secret), "short", expires_in_seconds=10), deps
    )
    uow.clock += timedelta(seconds=10)
    revoked = await handle(commands.CreateApiKey(await login(deps, done.api_key.secret), "r"), deps)
    uow.state.keys[revoked.key.id] = revoked.key.revoked(uow.clock)
    metrics.outcomes.clear()
    unknown = "gpf_" + "x" * 40
    cases = [
        ("", AuthOutcome.MALFORMED),
        ("garbage", AuthOutcome.MALFORMED),
        (unknown, AuthOutcome.INVALID),
        (expiring.secret, AuthOutcome.EXPIRED),
        (revoked.secret, AuthOutcome.REVOKED),
    ]
    for candidate, _ in cases:
        with pytest.raises(Unauthenticated) as err:
            await login(deps, candidate)
        assert err.value.message == "invalid API key"
    assert metrics.outcomes == [outcome for _, outcome in cases]
    assert uow.state.keys[expiring.key.id].last_used is None  # a refused key's use is not recorded


async def test_a_key_whose_owner_left_the_organization_is_invalid(deps, uow, metrics) -> None:
    done = await new_org(deps)
    uow.state.memberships.clear()
    with pytest.raises(Unauthenticated):
        await login(deps, done.api_key.secret)
    assert metrics.outcomes == [AuthOutcome.INVALID]


async def test_create_api_key_rules(deps, uow) -> None:
    done = await new_org(deps)
    owner = await login(deps, done.api_key.secret)
    ci = await handle(commands.CreateApiKey(owner, " ci ", ("jobs:read",), 3600), deps)
    assert ci.key.name == "ci" and ci.key.scopes == ("jobs:read",)
    assert ci.key.expires_at == uow.clock + timedelta(hours=1) and ci.key.user_id == owner.user_id
    assert (
        uow.state.audit[-1].action == "api_key.created"
        and uow.state.audit[-1].actor_api_key_id == owner.api_key_id
    )

    narrow = await login(deps, ci.secret)
    with pytest.raises(PermissionDenied):  # no admin scope
        await handle(commands.CreateApiKey(narrow, "x"), deps)
    for role in (Role.MEMBER, Role.VIEWER):
        with pytest.raises(PermissionDenied):
            await handle(commands.CreateApiKey(replace(owner, role=role), "x"), deps)
    keys_before = len(uow.state.keys)
    for bad in (
        commands.CreateApiKey(owner, ""),
        commands.CreateApiKey(owner, "x" * 101),
        commands.CreateApiKey(owner, "x", ("nope",)),
        commands.CreateApiKey(owner, "x", ("jobs:read",) * 33),
        commands.CreateApiKey(owner, "x", (), -5),
        commands.CreateApiKey(owner, "x", (), 10 * 365 * 24 * 3600 + 1),
    ):
        with pytest.raises(InvalidArgument):
            await handle(bad, deps)
    assert len(uow.state.keys) == keys_before


async def test_get_organization_is_the_callers_own(deps, uow) -> None:
    done = await new_org(deps)
    owner = await login(deps, done.api_key.secret)
    org = await handle(commands.GetOrganization(owner), deps)
    assert org == done.organization
    del uow.state.organizations[done.organization.id]
    with pytest.raises(NotFound):
        await handle(commands.GetOrganization(owner), deps)


async def test_list_and_revoke_stay_inside_the_callers_organization(deps, uow) -> None:
    a, b = await new_org(deps, "a@example.com"), await new_org(deps, "b@example.com")
    pa = await login(deps, a.api_key.secret)
    pb = await login(deps, b.api_key.secret)
    assert [k.id for k in await handle(commands.ListApiKeys(pb), deps)] == [b.api_key.key.id]
    for key_id in (a.api_key.key.id, uuid4(), None):
        with pytest.raises(NotFound):
            await handle(commands.RevokeApiKey(pb, key_id), deps)
    assert uow.state.keys[a.api_key.key.id].revoked_at is None

    revoked = await handle(commands.RevokeApiKey(pa, a.api_key.key.id), deps)
    assert revoked.revoked_at == uow.clock
    audits = len(uow.state.audit)
    uow.clock += timedelta(minutes=5)
    again = await handle(commands.RevokeApiKey(pa, a.api_key.key.id), deps)
    assert again.revoked_at == revoked.revoked_at and len(uow.state.audit) == audits
    with pytest.raises(Unauthenticated):
        await login(deps, a.api_key.secret)


async def test_a_member_cannot_revoke_someone_elses_key(deps) -> None:
    done = await new_org(deps)
    owner = await login(deps, done.api_key.secret)
    member = replace(owner, user_id=uuid4(), role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        await handle(commands.RevokeApiKey(member, done.api_key.key.id), deps)


async def test_an_expiring_key_cannot_mint_a_key_that_outlives_it(deps, uow) -> None:
    done = await new_org(deps)
    owner = await login(deps, done.api_key.secret)
    hour = await handle(commands.CreateApiKey(owner, "hour", (), 3600), deps)
    expiring = await login(deps, hour.secret)
    assert expiring.expires_at == uow.clock + timedelta(hours=1)
    uow.clock += timedelta(minutes=10)
    keys_before = len(uow.state.keys)
    for lifetime in (0, 3001):  # never, and ten minutes too late
        with pytest.raises(PermissionDenied) as err:
            await handle(commands.CreateApiKey(expiring, "child", (), lifetime), deps)
        assert err.value.field == "expires_in_seconds" and "at most 3000" in err.value.message
    assert len(uow.state.keys) == keys_before
    child = await handle(commands.CreateApiKey(expiring, "child", (), 3000), deps)
    assert child.key.expires_at == hour.key.expires_at


async def test_a_scoped_key_mints_only_what_it_has(deps, uow) -> None:
    done = await new_org(deps)
    owner = await login(deps, done.api_key.secret)
    manager = await login(
        deps, (await handle(commands.CreateApiKey(owner, "m", ("keys:write", "jobs:read")), deps)).secret
    )
    with pytest.raises(PermissionDenied) as err:
        await handle(commands.CreateApiKey(manager, "x", ("jobs:write",)), deps)
    assert "jobs:write" in err.value.message
    inherited = await handle(commands.CreateApiKey(manager, "same"), deps)
    assert inherited.key.scopes == ("jobs:read", "keys:read", "keys:write")


async def test_legacy_keys_still_authenticate_and_are_counted(deps, uow, metrics) -> None:
    done = await new_org(deps)
    old = "gpf_" + "Ab-_" * 10
    stored = uow.state.keys[done.api_key.key.id]
    uow.state.keys[stored.id] = replace(stored, key_hash=hash_key(old))
    assert (await login(deps, old)).api_key_id == stored.id
    assert metrics.legacy_keys == 1
    await login(deps, old)
    assert metrics.legacy_keys == 2 and metrics.outcomes == [AuthOutcome.OK] * 2
