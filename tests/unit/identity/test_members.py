"""Members and invites: token hashing and expiry, the role rules, and the handlers over the in-memory
unit of work (invite, accept, revoke, change a role, remove with its keys, the last owner, isolation)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.identity.domain import members as rules
from services.identity.domain.members import Invite, InviteKind, Member
from services.identity.domain.model import Principal, Role
from services.identity.service_layer import commands, handlers
from services.identity.service_layer.dependencies import InviteMail
from services.identity.service_layer.handlers import Dependencies, handle
from shared.contracts import limits
from shared.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

from .fakes import OPERATOR_TOKEN, FakeMetrics, FakeUnitOfWorkFactory

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- domain


def _invite(**changes: object) -> Invite:
    issued = rules.issue_invite(
        uuid4(), InviteKind.EMAIL, "eve@example.com", Role.MEMBER, timedelta(hours=1), 1, NOW, None
    )
    return replace(issued.invite, **changes)  # type: ignore[arg-type]


def test_an_invite_token_is_shaped_hashed_and_only_its_hash_kept() -> None:
    issued = rules.issue_invite(uuid4(), InviteKind.CODE, None, Role.VIEWER, timedelta(days=1), 5, NOW, None)
    token, invite = issued.token, issued.invite
    assert token.startswith("gpc_") and len(token) == 4 + rules.TOKEN_RANDOM_CHARS
    assert rules.token_shaped(token) and not rules.token_shaped(token[:-1])
    assert invite.token_hash == rules.hash_token(token) != rules.hash_token(token + "x")
    assert token not in repr(invite) and token not in repr(issued)
    assert invite.prefix == token[:12] and invite.expires_at == NOW + timedelta(days=1)
    email = rules.issue_invite(uuid4(), InviteKind.EMAIL, "a@b.co", Role.MEMBER, timedelta(1), 1, NOW, None)
    assert email.token.startswith("gpi_") and email.token != token


@pytest.mark.parametrize(
    "candidate", ["", "gpf_" + "a" * 43, "gpi_" + "a" * 42, "gpi_" + "-" * 43, "gpx_" + "a" * 43]
)
def test_what_cannot_be_an_invite_token(candidate: str) -> None:
    assert not rules.token_shaped(candidate)


def test_an_invite_refuses_when_expired_used_up_or_revoked() -> None:
    invite = _invite()
    assert invite.refusal_at(NOW) is None
    assert invite.refusal_at(invite.expires_at - timedelta(microseconds=1)) is None
    assert invite.refusal_at(invite.expires_at) == "this invite has expired"
    assert invite.used().refusal_at(NOW) == "this invite has been used"
    assert invite.revoked(NOW).refusal_at(NOW) == "this invite was revoked"
    assert invite.revoked(NOW).revoked(NOW + timedelta(1)).revoked_at == NOW  # first revocation kept
    with pytest.raises(Unauthenticated, match="expired"):
        invite.require_acceptable(invite.expires_at + timedelta(seconds=1))
    code = _invite(kind=InviteKind.CODE, email=None, max_uses=2)
    assert code.used().refusal_at(NOW) is None and code.used().used().refusal_at(NOW) is not None


def test_lifetimes_and_uses() -> None:
    assert rules.invite_lifetime(0) == timedelta(seconds=limits.INVITE_DEFAULT_LIFETIME_SECONDS)
    assert rules.invite_lifetime(60) == timedelta(seconds=60)
    for bad in (-1, limits.INVITE_MAX_LIFETIME_SECONDS + 1):
        with pytest.raises(InvalidArgument) as err:
            rules.invite_lifetime(bad)
        assert err.value.field == "expires_in_seconds"
    assert rules.invite_max_uses(InviteKind.EMAIL, 0) == 1
    assert rules.invite_max_uses(InviteKind.CODE, 0) == 1 and rules.invite_max_uses(InviteKind.CODE, 7) == 7
    for kind, bad in (
        (InviteKind.EMAIL, 2),
        (InviteKind.CODE, -1),
        (InviteKind.CODE, limits.INVITE_CODE_MAX_USES + 1),
    ):
        with pytest.raises(InvalidArgument):
            rules.invite_max_uses(kind, bad)


def test_the_acceptors_email() -> None:
    invite = _invite()
    assert invite.acceptor_email("") == "eve@example.com" == invite.acceptor_email(" Eve@Example.com ")
    with pytest.raises(PermissionDenied):
        invite.acceptor_email("mallory@example.com")
    code = _invite(kind=InviteKind.CODE, email=None, max_uses=3)
    assert code.acceptor_email("Bob@Example.com") == "bob@example.com"
    with pytest.raises(InvalidArgument):
        code.acceptor_email("")


def _principal(role: Role, scopes: tuple[str, ...] = limits.KEY_SCOPES) -> Principal:
    return Principal(uuid4(), uuid4(), role, uuid4(), scopes)


def _member(role: Role, user_id=None) -> Member:  # type: ignore[no-untyped-def]
    return Member(user_id or uuid4(), uuid4(), "m@example.com", None, role, NOW)


def test_who_may_manage_members() -> None:
    for role in (Role.OWNER, Role.ADMIN):
        rules.require_member_manager(_principal(role))
    for role in (Role.MEMBER, Role.VIEWER):
        with pytest.raises(PermissionDenied):
            rules.require_member_manager(_principal(role))
    with pytest.raises(PermissionDenied) as err:
        rules.require_member_manager(_principal(Role.OWNER, ("members:read", "jobs:write")))
    assert err.value.field == "scopes"
    rules.require_member_manager(_principal(Role.OWNER, ("members:write",)))
    rules.require_member_manager(_principal(Role.ADMIN, ("admin",)))


def test_an_admin_cannot_make_or_unmake_an_owner() -> None:
    admin, owner = _principal(Role.ADMIN), _principal(Role.OWNER)
    with pytest.raises(PermissionDenied):
        rules.require_may_grant(admin, Role.OWNER)
    rules.require_may_grant(owner, Role.OWNER)
    rules.require_may_grant(admin, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        rules.require_may_change_role(admin, _member(Role.MEMBER), Role.OWNER, owners=1)
    with pytest.raises(PermissionDenied):
        rules.require_may_change_role(admin, _member(Role.OWNER), Role.MEMBER, owners=2)
    with pytest.raises(PermissionDenied):
        rules.require_may_remove(admin, _member(Role.OWNER), owners=2)
    rules.require_may_change_role(admin, _member(Role.ADMIN), Role.VIEWER, owners=1)
    rules.require_may_remove(admin, _member(Role.ADMIN), owners=1)


def test_the_last_owner_stays() -> None:
    owner = _principal(Role.OWNER)
    me = _member(Role.OWNER, owner.user_id)
    with pytest.raises(FailedPrecondition):
        rules.require_may_change_role(owner, me, Role.ADMIN, owners=1)
    with pytest.raises(FailedPrecondition):
        rules.require_may_remove(owner, me, owners=1)
    rules.require_may_change_role(owner, me, Role.ADMIN, owners=2)
    rules.require_may_remove(owner, me, owners=2)
    rules.require_may_change_role(owner, me, Role.OWNER, owners=1)  # no change is no demotion


def test_anyone_may_leave_but_not_remove_others() -> None:
    viewer = _principal(Role.VIEWER)
    rules.require_may_remove(viewer, _member(Role.VIEWER, viewer.user_id), owners=1)
    with pytest.raises(PermissionDenied):
        rules.require_may_remove(viewer, _member(Role.VIEWER), owners=1)


def test_roles_parse() -> None:
    assert rules.member_role("", default=Role.MEMBER) is Role.MEMBER
    assert rules.member_role(" Admin ") is Role.ADMIN
    with pytest.raises(InvalidArgument) as err:
        rules.member_role("root")
    assert err.value.field == "role"
    with pytest.raises(InvalidArgument):
        rules.member_role("")


# ----------------------------------------------------------------------------- handlers


@dataclass
class FakeMailer:
    sent: list[InviteMail] = field(default_factory=list)
    works: bool = True

    async def send_invite(self, mail: InviteMail) -> bool:
        self.sent.append(mail)
        return self.works


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def deps(uow: FakeUnitOfWorkFactory, mailer: FakeMailer) -> Dependencies:
    from services.identity.domain.operator import OperatorToken

    return Dependencies(uow=uow, operator=OperatorToken(OPERATOR_TOKEN), metrics=FakeMetrics(), mailer=mailer)


async def _org(deps: Dependencies, email: str = "owner@example.com") -> tuple[Principal, str]:
    done = await handle(
        commands.CreateOrganization("Acme", email, "Ada", operator_token=OPERATOR_TOKEN), deps
    )
    return await handle(commands.Authenticate(done.api_key.secret), deps), done.api_key.secret


async def _join(deps: Dependencies, owner: Principal, email: str, role: str) -> tuple[Principal, str]:
    created = await handle(commands.CreateInvite(owner, email=email, role=role), deps)
    accepted = await handle(commands.AcceptInvite(created.issued.token), deps)
    secret = accepted.api_key.secret
    return await handle(commands.Authenticate(secret), deps), secret


async def test_an_email_invite_is_accepted_once_with_its_role(deps, uow, mailer) -> None:
    owner, _ = await _org(deps)
    created = await handle(commands.CreateInvite(owner, email="Vera@Example.com", role="viewer"), deps)
    assert created.mailed and [m.to for m in mailer.sent] == ["vera@example.com"]
    assert mailer.sent[0].token == created.issued.token and mailer.sent[0].organization_name == "Acme"
    stored = uow.state.invites[created.issued.invite.id]
    assert stored.token_hash == rules.hash_token(created.issued.token) and stored.uses == 0

    accepted = await handle(commands.AcceptInvite(created.issued.token, name="Vera"), deps)
    assert (accepted.member.email, accepted.member.role, accepted.organization.id) == (
        "vera@example.com",
        Role.VIEWER,
        owner.organization_id,
    )
    vera = await handle(commands.Authenticate(accepted.api_key.secret), deps)
    assert (vera.organization_id, vera.role, vera.user_id) == (
        owner.organization_id,
        Role.VIEWER,
        accepted.member.user_id,
    )
    assert uow.state.invites[created.issued.invite.id].uses == 1
    with pytest.raises(Unauthenticated, match="used"):
        await handle(commands.AcceptInvite(created.issued.token), deps)
    actions = [e.action for e in uow.state.audit if e.actor_user_id == vera.user_id]
    assert actions == ["user.created", "invite.accepted", "member.added", "api_key.created"]


async def test_an_invite_code_takes_each_acceptors_email_up_to_its_uses(deps) -> None:
    owner, _ = await _org(deps)
    created = await handle(commands.CreateInvite(owner, role="member", max_uses=2), deps)
    assert created.issued.token.startswith("gpc_") and not created.mailed
    with pytest.raises(InvalidArgument):
        await handle(commands.AcceptInvite(created.issued.token), deps)
    a = await handle(commands.AcceptInvite(created.issued.token, email="a@example.com"), deps)
    with pytest.raises(Conflict):  # a member already: the code is not spent on it
        await handle(commands.AcceptInvite(created.issued.token, email="a@example.com"), deps)
    b = await handle(commands.AcceptInvite(created.issued.token, email="b@example.com"), deps)
    assert {a.member.role, b.member.role} == {Role.MEMBER}
    with pytest.raises(Unauthenticated, match="used"):
        await handle(commands.AcceptInvite(created.issued.token, email="c@example.com"), deps)


async def test_an_expired_or_revoked_or_unknown_invite_is_refused(deps, uow) -> None:
    owner, _ = await _org(deps)
    short = await handle(commands.CreateInvite(owner, email="x@example.com", expires_in_seconds=60), deps)
    revoked = await handle(commands.CreateInvite(owner, email="y@example.com"), deps)
    again = await handle(commands.RevokeInvite(owner, revoked.issued.invite.id), deps)
    assert again.revoked_at is not None
    uow.clock += timedelta(seconds=60)
    with pytest.raises(Unauthenticated, match="expired"):
        await handle(commands.AcceptInvite(short.issued.token), deps)
    with pytest.raises(Unauthenticated, match="revoked"):
        await handle(commands.AcceptInvite(revoked.issued.token), deps)
    for bad in ("", "nonsense", rules.new_token(InviteKind.EMAIL)):
        with pytest.raises(Unauthenticated) as err:
            await handle(commands.AcceptInvite(bad), deps)
        assert err.value.message == rules.INVALID_INVITE


async def test_only_managers_invite_and_an_admin_invites_no_owner(deps) -> None:
    owner, _ = await _org(deps)
    viewer, _ = await _join(deps, owner, "v@example.com", "viewer")
    admin, _ = await _join(deps, owner, "ad@example.com", "admin")
    with pytest.raises(PermissionDenied):
        await handle(commands.CreateInvite(viewer, email="z@example.com"), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.ListInvites(viewer), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.CreateInvite(admin, email="z@example.com", role="owner"), deps)
    assert (await handle(commands.CreateInvite(admin, email="z@example.com", role="admin"), deps)).issued
    with pytest.raises(Conflict):
        await handle(commands.CreateInvite(owner, email="v@example.com"), deps)


async def test_removing_a_member_revokes_their_keys(deps, uow) -> None:
    owner, _ = await _org(deps)
    member, secret = await _join(deps, owner, "m@example.com", "member")
    await handle(commands.CreateApiKey(owner, "owner's second"), deps)
    removed = await handle(commands.RemoveMember(owner, member.user_id), deps)
    assert removed.user_id == member.user_id
    with pytest.raises(Unauthenticated):
        await handle(commands.Authenticate(secret), deps)
    theirs = [k for k in uow.state.keys.values() if k.user_id == member.user_id]
    assert theirs and all(k.revoked_at is not None for k in theirs)
    assert all(k.revoked_at is None for k in uow.state.keys.values() if k.user_id == owner.user_id)
    assert uow.state.audit[-1].action == "member.removed" and uow.state.audit[-1].details["keys_revoked"] == 1
    assert [m.user_id for m in await handle(commands.ListMembers(owner), deps)] == [owner.user_id]


async def test_the_last_owner_can_be_neither_demoted_nor_removed(deps) -> None:
    owner, _ = await _org(deps)
    with pytest.raises(FailedPrecondition):
        await handle(commands.UpdateMember(owner, owner.user_id, "admin"), deps)
    with pytest.raises(FailedPrecondition):
        await handle(commands.RemoveMember(owner, owner.user_id), deps)
    second, _ = await _join(deps, owner, "o2@example.com", "owner")
    changed = await handle(commands.UpdateMember(second, owner.user_id, "admin"), deps)
    assert changed.role is Role.ADMIN
    with pytest.raises(FailedPrecondition):
        await handle(commands.RemoveMember(second, second.user_id), deps)


async def test_an_admin_cannot_demote_an_owner_but_changes_others(deps) -> None:
    owner, _ = await _org(deps)
    admin, _ = await _join(deps, owner, "ad@example.com", "admin")
    member, _ = await _join(deps, owner, "m@example.com", "member")
    with pytest.raises(PermissionDenied):
        await handle(commands.UpdateMember(admin, owner.user_id, "viewer"), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.UpdateMember(admin, member.user_id, "owner"), deps)
    with pytest.raises(PermissionDenied):
        await handle(commands.RemoveMember(admin, owner.user_id), deps)
    assert (await handle(commands.UpdateMember(admin, member.user_id, "viewer"), deps)).role is Role.VIEWER


async def test_a_role_change_is_what_the_next_authentication_answers(deps) -> None:
    owner, _ = await _org(deps)
    _, secret = await _join(deps, owner, "m@example.com", "member")
    member = await handle(commands.Authenticate(secret), deps)
    await handle(commands.UpdateMember(owner, member.user_id, "viewer"), deps)
    assert (await handle(commands.Authenticate(secret), deps)).role is Role.VIEWER


async def test_another_organization_sees_and_touches_nothing(deps, uow) -> None:
    a, _ = await _org(deps, "a@example.com")
    b, _ = await _org(deps, "b@example.com")
    a_member, _ = await _join(deps, a, "m@example.com", "member")
    invite = await handle(commands.CreateInvite(a, email="p@example.com"), deps)
    assert [m.user_id for m in await handle(commands.ListMembers(b), deps)] == [b.user_id]
    assert await handle(commands.ListInvites(b), deps) == []
    for cmd in (
        commands.RevokeInvite(b, invite.issued.invite.id),
        commands.UpdateMember(b, a_member.user_id, "viewer"),
        commands.RemoveMember(b, a_member.user_id),
        commands.RevokeInvite(b, None),
        commands.RemoveMember(b, None),
    ):
        with pytest.raises(NotFound):
            await handle(cmd, deps)
    assert uow.state.invites[invite.issued.invite.id].revoked_at is None
    assert (await handle(commands.ListMembers(a), deps))[1].role is Role.MEMBER


async def test_a_failed_mail_still_hands_the_token_back(deps, mailer) -> None:
    owner, _ = await _org(deps)
    mailer.works = False
    created = await handle(commands.CreateInvite(owner, email="q@example.com"), deps)
    assert not created.mailed and rules.token_shaped(created.issued.token)


def test_every_member_command_is_handled() -> None:
    for cmd in (commands.CreateInvite, commands.AcceptInvite, commands.RemoveMember, commands.CreateOperator):
        assert cmd in handlers.HANDLERS
