"""The unit of work the handlers depend on; adapters/repository.py implements it over PostgreSQL and
tests implement it in memory. One unit = one transaction: a change and its audit rows commit together."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.model import ApiKey, AuditEntry, Membership, Organization, Role, User


@dataclass(frozen=True)
class Credential:
    """A key found by its hash, with its owner's role in the key's organization."""

    key: ApiKey
    role: Role


class IdentityUnitOfWork(Protocol):
    async def now(self) -> datetime:
        """The clock of record (the database's, so every replica agrees on expiry)."""

    async def add_organization(self, organization: Organization) -> None: ...

    async def organization(self, organization_id: UUID) -> Organization | None: ...

    async def ensure_user(self, user: User, default_organization_id: UUID) -> tuple[User, bool]:
        """The user with ``user.email``, created from ``user`` if there is none (True when created)."""

    async def add_membership(self, membership: Membership) -> None: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def credential(self, key_hash: str) -> Credential | None:
        """The key with this hash whose owner is still a member of its organization."""

    async def record_key_use(self, key_id: UUID, at: datetime) -> None:
        """Set ``last_used`` unless another call recorded a use within the recording interval."""

    async def api_key(self, key_id: UUID) -> ApiKey | None:
        """A key of the unit's organization, locked for update."""

    async def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        """The organization's keys, oldest first."""

    async def save_revocation(self, key: ApiKey) -> None: ...

    async def audit(self, entry: AuditEntry) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[IdentityUnitOfWork]: ...
