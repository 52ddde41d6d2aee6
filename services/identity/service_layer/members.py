"""Member handlers: invite (by email or code), accept, revoke an invite, list, change a role, remove.

Tenant calls run in the caller's organization (row-level security backs up the explicit filters);
accepting runs in the system scope, since the invitee has no organization yet: the invite's token
names it. Membership changes of one organization are serialised (``lock_organization``) so that two
concurrent changes cannot both pass the last-owner rule. Removing a member revokes every key they hold
in the organization in the same transaction; authentication also requires a membership, so their keys
stop working at once in identity and within the one-second cache everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from shared.errors import Conflict, NotFound, Unauthenticated

from ..domain import members as rules
from ..domain import model
from ..domain.members import INVALID_INVITE, Invite, InviteKind, IssuedInvite, Member
from ..domain.model import AuditEntry, Membership, Organization, Role, User
from . import commands
from .dependencies import Dependencies, InviteMail, IssuedKey, key_details

log = logging.getLogger("gpufleet.identity.members")

INVITE_KEY_NAME = "invite"


@dataclass(frozen=True)
class CreatedInvite:
    issued: IssuedInvite
    mailed: bool


@dataclass(frozen=True)
class AcceptedInvite:
    organization: Organization
    member: Member
    api_key: IssuedKey


def _invite_details(invite: Invite) -> dict:
    return {
        "kind": invite.kind.value,
        "email": invite.email,
        "role": invite.role.value,
        "prefix": invite.prefix,
        "max_uses": invite.max_uses,
        "expires_at": invite.expires_at.isoformat(),
    }


async def create_invite(cmd: commands.CreateInvite, deps: Dependencies) -> CreatedInvite:
    caller = cmd.caller
    rules.require_member_manager(caller)
    role = rules.member_role(cmd.role, default=Role.MEMBER)
    rules.require_may_grant(caller, role)
    kind = InviteKind.EMAIL if cmd.email.strip() else InviteKind.CODE
    email = model.email_address(cmd.email, "email") if kind is InviteKind.EMAIL else None
    lifetime = rules.invite_lifetime(cmd.expires_in_seconds)
    max_uses = rules.invite_max_uses(kind, cmd.max_uses)
    org_id = caller.organization_id
    async with deps.uow(org_id=org_id) as tx:
        if email is not None and await tx.member_by_email(org_id, email) is not None:
            raise Conflict("this address is a member already", field="email")
        now = await tx.now()
        issued = rules.issue_invite(org_id, kind, email, role, lifetime, max_uses, now, caller.user_id)
        await tx.add_invite(issued.invite)
        await tx.audit(
            AuditEntry.by(
                caller, "invite.created", "invite", issued.invite.id, **_invite_details(issued.invite)
            )
        )
        org = await tx.organization(org_id)
    mailed = False
    if email is not None and org is not None:  # after commit: nothing is mailed for a rolled-back invite
        mailed = await deps.mailer.send_invite(
            InviteMail(email, org.name, role, issued.token, issued.invite.expires_at)
        )
    return CreatedInvite(issued, mailed)


async def list_invites(cmd: commands.ListInvites, deps: Dependencies) -> list[Invite]:
    """Pending and past invites: owners and admins only (they name who was invited)."""
    rules.require_manager_role(cmd.caller)
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        return await tx.invites(cmd.caller.organization_id)


async def revoke_invite(cmd: commands.RevokeInvite, deps: Dependencies) -> Invite:
    """Revoking a revoked invite changes nothing; another organization's reads as missing."""
    caller = cmd.caller
    rules.require_member_manager(caller)
    async with deps.uow(org_id=caller.organization_id) as tx:
        invite = await tx.invite(cmd.invite_id) if cmd.invite_id else None
        if invite is None or invite.organization_id != caller.organization_id:
            raise NotFound("invite not found", field="id")
        if invite.revoked_at is not None:
            return invite
        invite = invite.revoked(await tx.now())
        await tx.save_invite(invite)
        await tx.audit(AuditEntry.by(caller, "invite.revoked", "invite", invite.id, prefix=invite.prefix))
    return invite


async def accept_invite(cmd: commands.AcceptInvite, deps: Dependencies) -> AcceptedInvite:
    """The invitee becomes a member with the invite's role (an existing user with that email is reused)
    and gets a first API key, shown once."""
    if not rules.token_shaped(cmd.token):
        raise Unauthenticated(INVALID_INVITE)
    name = model.person_name(cmd.name, "name")
    async with deps.uow(system=True) as tx:
        invite = await tx.invite_by_token(rules.hash_token(cmd.token))
        if invite is None:
            raise Unauthenticated(INVALID_INVITE)
        now = await tx.now()
        invite.require_acceptable(now)
        email = invite.acceptor_email(cmd.email)
        org_id = invite.organization_id
        await tx.lock_organization(org_id)
        user, created = await tx.ensure_user(User(id=uuid4(), email=email, name=name), org_id)
        if await tx.member(org_id, user.id) is not None:
            raise Conflict("you are a member of this organization already", field="email")
        await tx.add_membership(Membership(user_id=user.id, organization_id=org_id, role=invite.role))
        await tx.save_invite(invite.used())
        key, secret = model.issue_key(org_id, user.id, INVITE_KEY_NAME, model.SCOPES, now)
        await tx.add_api_key(key)

        def by_invitee(action: str, target_type: str, target_id: object, **details: object) -> AuditEntry:
            return AuditEntry(org_id, action, target_type, str(target_id), user.id, None, dict(details))

        if created:
            await tx.audit(by_invitee("user.created", "user", user.id, email=email))
        await tx.audit(by_invitee("invite.accepted", "invite", invite.id, prefix=invite.prefix))
        await tx.audit(
            by_invitee("member.added", "user", user.id, role=invite.role.value, invite_id=str(invite.id))
        )
        await tx.audit(by_invitee("api_key.created", "api_key", key.id, **key_details(key)))
        member = await tx.member(org_id, user.id)
        org = await tx.organization(org_id)
    assert member is not None and org is not None  # written in this very transaction
    return AcceptedInvite(org, member, IssuedKey(key, secret))


async def list_members(cmd: commands.ListMembers, deps: Dependencies) -> list[Member]:
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        return await tx.members(cmd.caller.organization_id)


async def update_member(cmd: commands.UpdateMember, deps: Dependencies) -> Member:
    caller = cmd.caller
    rules.require_member_manager(caller)
    role = rules.member_role(cmd.role)
    org_id = caller.organization_id
    async with deps.uow(org_id=org_id) as tx:
        await tx.lock_organization(org_id)
        target = await tx.member(org_id, cmd.user_id) if cmd.user_id else None
        if target is None:
            raise NotFound("member not found", field="user_id")
        rules.require_may_change_role(caller, target, role, await tx.owner_count(org_id))
        if target.role is role:
            return target
        await tx.save_role(org_id, target.user_id, role)
        await tx.audit(
            AuditEntry.by(
                caller,
                "member.role_changed",
                "user",
                target.user_id,
                before=target.role.value,
                after=role.value,
            )
        )
    return Member(target.user_id, org_id, target.email, target.name, role, target.joined_at)


async def remove_member(cmd: commands.RemoveMember, deps: Dependencies) -> Member:
    caller = cmd.caller
    org_id = caller.organization_id
    async with deps.uow(org_id=org_id) as tx:
        await tx.lock_organization(org_id)
        target = await tx.member(org_id, cmd.user_id) if cmd.user_id else None
        if target is None:
            raise NotFound("member not found", field="user_id")
        rules.require_may_remove(caller, target, await tx.owner_count(org_id))
        # Leaving the organization leaves its projects (the schema cascades too; this names them).
        for project_id, project_role in await tx.remove_project_memberships_of(org_id, target.user_id):
            await tx.audit(
                AuditEntry.by(
                    caller,
                    "project_member.removed",
                    "user",
                    target.user_id,
                    project_id=str(project_id),
                    role=project_role.value,
                    reason="left the organization",
                )
            )
        await tx.remove_membership(org_id, target.user_id)
        revoked = await tx.revoke_keys_of(org_id, target.user_id, await tx.now())
        await tx.audit(
            AuditEntry.by(
                caller, "member.removed", "user", target.user_id, role=target.role.value, keys_revoked=revoked
            )
        )
    log.info("member removed", extra={"organization_id": str(org_id), "keys_revoked": revoked})
    return target


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.CreateInvite: create_invite,
    commands.ListInvites: list_invites,
    commands.RevokeInvite: revoke_invite,
    commands.AcceptInvite: accept_invite,
    commands.ListMembers: list_members,
    commands.UpdateMember: update_member,
    commands.RemoveMember: remove_member,
}
