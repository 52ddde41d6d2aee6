"""The unit of work the handlers depend on; adapters/repository.py implements it over PostgreSQL and
tests implement it in memory. One unit = one transaction: a change and its audit rows commit together."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ..domain.members import Invite, Member
from ..domain.model import ApiKey, AuditEntry, Membership, Organization, ProjectRole, Role, User
from ..domain.operator import NamedOperator
from ..domain.projects import Project, ProjectMember


@dataclass(frozen=True)
class Credential:
    """A key found by its hash, with its owner's role in the key's organization."""

    key: ApiKey
    role: Role
    # The owner's roles in the organization's projects (empty for owners and admins: they hold all).
    project_roles: tuple[tuple[UUID, ProjectRole], ...] = ()


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

    async def credentials(self, key_hashes: list[str]) -> dict[str, Credential]:
        """:meth:`credential` for many keys at once, by hash (keys not found left out)."""

    async def record_key_use(self, key_id: UUID, at: datetime) -> None:
        """Set ``last_used`` unless another call recorded a use within the recording interval."""

    async def api_key(self, key_id: UUID) -> ApiKey | None:
        """A key of the unit's organization, locked for update."""

    async def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        """The organization's keys, oldest first."""

    async def save_revocation(self, key: ApiKey) -> None: ...

    async def audit(self, entry: AuditEntry) -> None: ...

    # --- members and invites (docs/members.md)

    async def lock_organization(self, organization_id: UUID) -> None:
        """Serialise membership changes of one organization (the last-owner rule reads, then writes)."""

    async def add_invite(self, invite: Invite) -> None: ...

    async def invite(self, invite_id: UUID) -> Invite | None:
        """An invite of the unit's organization, locked for update."""

    async def invite_by_token(self, token_hash: str) -> Invite | None:
        """The invite with this token hash (system scope), locked for update."""

    async def invites(self, organization_id: UUID) -> list[Invite]:
        """The organization's invites, newest first."""

    async def save_invite(self, invite: Invite) -> None:
        """Store an invite's uses and revocation."""

    async def member(self, organization_id: UUID, user_id: UUID) -> Member | None: ...

    async def member_by_email(self, organization_id: UUID, email: str) -> Member | None: ...

    async def members(self, organization_id: UUID) -> list[Member]:
        """The organization's members, oldest membership first."""

    async def owner_count(self, organization_id: UUID) -> int: ...

    async def save_role(self, organization_id: UUID, user_id: UUID, role: Role) -> None: ...

    async def remove_membership(self, organization_id: UUID, user_id: UUID) -> None: ...

    async def revoke_keys_of(self, organization_id: UUID, user_id: UUID, at: datetime) -> int:
        """Revoke every unrevoked key the user holds in the organization; how many were revoked."""

    # --- projects (docs/projects.md)

    async def add_project(self, project: Project) -> None: ...

    async def project(self, project_id: UUID) -> Project | None:
        """A project of the unit's organization, locked for update."""

    async def project_by_slug(self, organization_id: UUID, slug: str) -> Project | None: ...

    async def projects(self, organization_id: UUID, *, include_archived: bool) -> list[Project]:
        """The organization's projects, oldest first."""

    async def active_project_count(self, organization_id: UUID) -> int: ...

    async def save_project(self, project: Project) -> None:
        """Store a project's name, slug, description and archive time."""

    async def project_member(self, project_id: UUID, user_id: UUID) -> ProjectMember | None: ...

    async def project_members(self, project_id: UUID) -> list[ProjectMember]:
        """The project's members, oldest first."""

    async def save_project_member(
        self, organization_id: UUID, project_id: UUID, user_id: UUID, role: ProjectRole, added_by: UUID
    ) -> None:
        """Add the user to the project with ``role``, or change the role they have there."""

    async def remove_project_member(self, project_id: UUID, user_id: UUID) -> None: ...

    async def remove_project_memberships_of(
        self, organization_id: UUID, user_id: UUID
    ) -> list[tuple[UUID, ProjectRole]]:
        """Remove the user from every project of the organization; the (project, role) pairs removed."""

    # --- named operators (system scope only)

    async def add_operator(self, operator: NamedOperator) -> bool:
        """False when an operator of that name exists already."""

    async def operator_by_token(self, token_hash: str) -> NamedOperator | None: ...

    async def named_operator(self, operator_id: UUID) -> NamedOperator | None:
        """Locked for update."""

    async def operators(self) -> list[NamedOperator]:
        """Every named operator, oldest first."""

    async def save_operator_revocation(self, operator: NamedOperator) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[IdentityUnitOfWork]: ...
