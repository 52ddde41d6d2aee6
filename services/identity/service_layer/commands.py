"""What the entrypoints ask of the service layer (already translated from the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from ..domain.model import Principal


@dataclass(frozen=True)
class Authenticate:
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class CreateOrganization:
    """An operator call: the admin token was checked by the entrypoint."""

    name: str
    owner_email: str
    owner_name: str = ""


@dataclass(frozen=True)
class CreateApiKey:
    caller: Principal
    name: str
    scopes: tuple[str, ...] = ()
    expires_in_seconds: int = 0


@dataclass(frozen=True)
class RevokeApiKey:
    caller: Principal
    key_id: UUID | None  # None: the id on the wire was malformed, which reads as "not found"
