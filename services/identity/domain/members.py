"""Members of an organization and the invites that make them: tokens, expiry, and who may do what.

Two kinds of invite (seeds 000 and 003), one shape:

* an **email invite** names its invitee; its token (``gpi_``) is handed to the inviter to pass on (and
  mailed when identity has an SMTP server), and it works once;
* an **invite code** (``gpc_``) names nobody: whoever holds it gives their email when accepting, up to
  ``max_uses`` people before it expires.

Like API keys, an invite's token is 43 random base62 characters behind its prefix and only its
SHA-256 is stored; it is found by hashing what is presented, so no stored secret is ever compared.

Role rules: owners and admins manage members (with a key that carries ``members:write``); only an
owner makes, unmakes or removes an owner; the last owner can be neither demoted nor removed; anyone may
leave an organization (remove themselves), except its last owner.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid4

from shared import scopes as scope_table
from shared.api_keys import BASE62
from shared.contracts import limits
from shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated

from .model import Principal, Role, email_address

TOKEN_RANDOM_CHARS = 43  # 256 bits of base62
DISPLAY_PREFIX_LENGTH = 12
DEFAULT_LIFETIME = timedelta(seconds=limits.INVITE_DEFAULT_LIFETIME_SECONDS)
MAX_LIFETIME = timedelta(seconds=limits.INVITE_MAX_LIFETIME_SECONDS)
MAX_USES = limits.INVITE_CODE_MAX_USES
# One answer for a token that is not an invite at all, so that nothing tells guesses apart.
INVALID_INVITE = "invalid invite token"


class InviteKind(StrEnum):
    EMAIL = "email"
    CODE = "code"

    @property
    def prefix(self) -> str:
        return "gpi_" if self is InviteKind.EMAIL else "gpc_"


_TOKEN = re.compile(rf"^gp[ic]_[0-9A-Za-z]{{{TOKEN_RANDOM_CHARS}}}$")


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_shaped(candidate: str) -> bool:
    """Whether ``candidate`` could be an invite's token; anything else is refused without a look-up."""
    return _TOKEN.match(candidate) is not None


def new_token(kind: InviteKind) -> str:
    return kind.prefix + "".join(secrets.choice(BASE62) for _ in range(TOKEN_RANDOM_CHARS))


def member_role(raw: str, *, default: Role | None = None) -> Role:
    value = raw.strip().lower()
    if not value and default is not None:
        return default
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument(
            f"role must be one of: {', '.join(limits.MEMBER_ROLES)}", field="role"
        ) from None


def invite_lifetime(expires_in_seconds: int) -> timedelta:
    """0 means the default (7 days); an invite always expires."""
    if expires_in_seconds < 0:
        raise InvalidArgument("expires_in_seconds must not be negative", field="expires_in_seconds")
    if expires_in_seconds == 0:
        return DEFAULT_LIFETIME
    lifetime = timedelta(seconds=expires_in_seconds)
    if lifetime > MAX_LIFETIME:
        raise InvalidArgument(
            f"expires_in_seconds must be at most {int(MAX_LIFETIME.total_seconds())}",
            field="expires_in_seconds",
        )
    return lifetime


def invite_max_uses(kind: InviteKind, max_uses: int) -> int:
    """An email invite works once; a code up to ``max_uses`` times (0: once)."""
    if kind is InviteKind.EMAIL:
        if max_uses not in (0, 1):
            raise InvalidArgument("an email invite works once: leave max_uses out", field="max_uses")
        return 1
    if max_uses < 0 or max_uses > MAX_USES:
        raise InvalidArgument(f"max_uses must be between 1 and {MAX_USES}", field="max_uses")
    return max_uses or 1


@dataclass(frozen=True)
class Invite:
    id: UUID
    organization_id: UUID
    kind: InviteKind
    email: str | None
    role: Role
    prefix: str
    token_hash: str
    max_uses: int
    expires_at: datetime
    created_at: datetime
    created_by_user_id: UUID | None = None
    uses: int = 0
    revoked_at: datetime | None = None

    def refusal_at(self, now: datetime) -> str | None:
        """Why the invite cannot be accepted at ``now`` (None: it can). Told only to whoever holds its
        token, so saying which is no oracle."""
        if self.revoked_at is not None:
            return "this invite was revoked"
        if now >= self.expires_at:
            return "this invite has expired"
        if self.uses >= self.max_uses:
            return "this invite has been used"
        return None

    def require_acceptable(self, now: datetime) -> None:
        refusal = self.refusal_at(now)
        if refusal is not None:
            raise Unauthenticated(refusal)

    def acceptor_email(self, given: str) -> str:
        """The email the new member joins with: an email invite's own (a different one is refused), or
        the one given for a code (required)."""
        if self.kind is InviteKind.EMAIL:
            assert self.email is not None
            if given.strip() and email_address(given, "email") != self.email:
                raise PermissionDenied("this invite is for another email address", field="email")
            return self.email
        if not given.strip():
            raise InvalidArgument("email is required to accept an invite code", field="email")
        return email_address(given, "email")

    def used(self) -> Invite:
        return replace(self, uses=self.uses + 1)

    def revoked(self, now: datetime) -> Invite:
        """Revoked at ``now``; an invite revoked before keeps its first revocation time."""
        return self if self.revoked_at is not None else replace(self, revoked_at=now)


@dataclass(frozen=True)
class IssuedInvite:
    invite: Invite
    token: str = field(repr=False)  # shown to the inviter once, never stored nor logged


def issue_invite(
    organization_id: UUID,
    kind: InviteKind,
    email: str | None,
    role: Role,
    lifetime: timedelta,
    max_uses: int,
    now: datetime,
    created_by_user_id: UUID | None,
    new_secret: Callable[[InviteKind], str] = new_token,
) -> IssuedInvite:
    secret = new_secret(kind)
    if not token_shaped(secret) or not secret.startswith(kind.prefix):  # guards an injected source
        raise ValueError("generated invite token is malformed")
    invite = Invite(
        id=uuid4(),
        organization_id=organization_id,
        kind=kind,
        email=email,
        role=role,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        token_hash=hash_token(secret),
        max_uses=max_uses,
        expires_at=now + lifetime,
        created_at=now,
        created_by_user_id=created_by_user_id,
    )
    return IssuedInvite(invite, secret)


@dataclass(frozen=True)
class Member:
    user_id: UUID
    organization_id: UUID
    email: str
    name: str | None
    role: Role
    joined_at: datetime


# ----------------------------------------------------------------------------- who may do what


def require_manager_role(caller: Principal) -> None:
    """Seeing invites (they name who was invited): owners and admins."""
    if not caller.role.manages_keys:
        raise PermissionDenied(f"the {caller.role} role cannot manage members")
    # A project-bound key acts inside its project (docs/projects.md): an invite would mint an unbound key.
    if caller.project_id is not None:
        raise PermissionDenied("a project-bound API key cannot manage the organization's members")


def require_member_manager(caller: Principal) -> None:
    """Inviting, revoking invites, changing roles and removing others: owners and admins, with a key
    that carries ``members:write`` (or ``admin``)."""
    require_manager_role(caller)
    if scope_table.MEMBERS_WRITE not in scope_table.granted(caller.scopes):
        raise PermissionDenied(f"this API key lacks the {scope_table.MEMBERS_WRITE} scope", field="scopes")


def require_may_grant(caller: Principal, role: Role) -> None:
    """Only an owner makes an owner (by invite or by a change of role)."""
    if role is Role.OWNER and caller.role is not Role.OWNER:
        raise PermissionDenied("only an owner can make an owner")


def _last_owner(target: Member, owners: int) -> bool:
    return target.role is Role.OWNER and owners <= 1


def require_may_change_role(caller: Principal, target: Member, role: Role, owners: int) -> None:
    """``owners``: how many owners the organization has now."""
    require_member_manager(caller)
    require_may_grant(caller, role)
    if target.role is Role.OWNER and caller.role is not Role.OWNER:
        raise PermissionDenied("only an owner can change an owner's role")
    if role is not Role.OWNER and _last_owner(target, owners):
        raise FailedPrecondition("the last owner cannot be demoted: make another member an owner first")


def require_may_remove(caller: Principal, target: Member, owners: int) -> None:
    """Anyone may leave; removing someone else needs a member manager, and an owner only an owner."""
    if target.user_id != caller.user_id:
        require_member_manager(caller)
        if target.role is Role.OWNER and caller.role is not Role.OWNER:
            raise PermissionDenied("only an owner can remove an owner")
    if _last_owner(target, owners):
        raise FailedPrecondition("the last owner cannot be removed: make another member an owner first")
