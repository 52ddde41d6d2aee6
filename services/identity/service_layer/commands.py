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


Command = Authenticate | CreateOrganization | GetOrganization | CreateApiKey | ListApiKeys | RevokeApiKey
