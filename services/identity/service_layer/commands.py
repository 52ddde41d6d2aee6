"""What the entrypoints ask of the service layer (already translated from the wire).

Tenant commands carry the ``caller``: the principal the entrypoint resolved with :class:`Authenticate`
from the same request's key."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from ..domain.model import Principal


@dataclass(frozen=True)
class Authenticate:
    api_key: str = field(repr=False)
    # The Authenticate RPC (other services asking who a caller is) also recognises the operator token;
    # identity's own tenant calls do not.
    operator_allowed: bool = False


@dataclass(frozen=True)
class CreateOrganization:
    """An operator call: ``operator_token`` is what the caller presented (None: nothing)."""

    name: str
    owner_email: str
    owner_name: str = ""
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GetOrganization:
    caller: Principal


@dataclass(frozen=True)
class CreateApiKey:
    caller: Principal
    name: str
    scopes: tuple[str, ...] = ()
    expires_in_seconds: int = 0


@dataclass(frozen=True)
class ListApiKeys:
    caller: Principal


@dataclass(frozen=True)
class RevokeApiKey:
    caller: Principal
    key_id: UUID | None  # None: the id on the wire was malformed, which reads as "not found"


# --- members and invites (docs/members.md)


@dataclass(frozen=True)
class CreateInvite:
    caller: Principal
    email: str = ""  # "": an invite code
    role: str = ""  # "": member
    expires_in_seconds: int = 0  # 0: the default lifetime
    max_uses: int = 0  # codes only; 0: once


@dataclass(frozen=True)
class ListInvites:
    caller: Principal


@dataclass(frozen=True)
class RevokeInvite:
    caller: Principal
    invite_id: UUID | None  # None: malformed on the wire, which reads as "not found"


@dataclass(frozen=True)
class AcceptInvite:
    """Unauthenticated: the token is the credential."""

    token: str = field(repr=False)
    email: str = ""
    name: str = ""


@dataclass(frozen=True)
class ListMembers:
    caller: Principal


@dataclass(frozen=True)
class UpdateMember:
    caller: Principal
    user_id: UUID | None
    role: str


@dataclass(frozen=True)
class RemoveMember:
    caller: Principal
    user_id: UUID | None


# --- named operators: ``operator_token`` is what the caller presented (None: nothing)


@dataclass(frozen=True)
class CreateOperator:
    name: str
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ListOperators:
    operator_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RevokeOperator:
    operator_id: UUID | None
    operator_token: str | None = field(default=None, repr=False)


Command = (
    Authenticate
    | CreateOrganization
    | GetOrganization
    | CreateApiKey
    | ListApiKeys
    | RevokeApiKey
    | CreateInvite
    | ListInvites
    | RevokeInvite
    | AcceptInvite
    | ListMembers
    | UpdateMember
    | RemoveMember
    | CreateOperator
    | ListOperators
    | RevokeOperator
)
