"""An in-memory unit of work for identity's handlers: committed state, a settable clock, and the
organization scope enforced the way row-level security enforces it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from services.identity.domain.members import Invite, Member
from services.identity.domain.model import (
    USE_RECORDING_INTERVAL,
    ApiKey,
    AuditEntry,
    AuthOutcome,
    Membership,
    Organization,
    Role,
    User,
)
from services.identity.domain.operator import NamedOperator, OperatorToken
from services.identity.service_layer.handlers import Dependencies
from services.identity.service_layer.unit_of_work import Credential

from .project_fakes import FakeProjects, ProjectState


@dataclass
class State:
    organizations: dict[UUID, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)  # by email
    memberships: list[Membership] = field(default_factory=list)
    keys: dict[UUID, ApiKey] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    key_use_writes: int = 0
    invites: dict[UUID, Invite] = field(default_factory=dict)
    operators: dict[UUID, NamedOperator] = field(default_factory=dict)
    joined: dict[tuple[UUID, UUID], datetime] = field(default_factory=dict)  # (org, user) -> when
    project_state: ProjectState = field(default_factory=ProjectState)


class FakeUnitOfWork(FakeProjects):
    def __init__(self, state: State, clock: datetime, org_id: UUID | None, system: bool) -> None:
        self.state, self.clock, self.org_id, self.system = state, clock, org_id, system

    def _visible(self, organization_id: UUID) -> bool:
        return self.system or organization_id == self.org_id

    async def now(self) -> datetime:
        return self.clock

    async def add_organization(self, organization: Organization) -> None:
        self.state.organizations[organization.id] = organization

    async def organization(self, organization_id: UUID) -> Organization | None:
        org = self.state.organizations.get(organization_id)
        return org if org and self._visible(org.id) else None

    async def ensure_user(self, user: User, default_organization_id: UUID) -> tuple[User, bool]:
        existing = self.state.users.get(user.email)
        if existing:
            return existing, False
        self.state.users[user.email] = user
        return user, True

    async def add_membership(self, membership: Membership) -> None:
        assert self._visible(membership.organization_id)
        assert all(
            (m.user_id, m.organization_id) != (membership.user_id, membership.organization_id)
            for m in self.state.memberships
        ), "UNIQUE (user_id, organization_id)"
        self.state.memberships.append(membership)
        self.state.joined[(membership.organization_id, membership.user_id)] = self.clock

    async def add_api_key(self, key: ApiKey) -> None:
        assert self._visible(key.organization_id)
        self.state.keys[key.id] = key

    async def credential(self, key_hash: str) -> Credential | None:
        for key in self.state.keys.values():
            if key.key_hash == key_hash and self._visible(key.organization_id):
                for m in self.state.memberships:
                    if (m.user_id, m.organization_id) == (key.user_id, key.organization_id):
                        roles = (
                            () if m.role.holds_every_project else self.roles_of(m.organization_id, m.user_id)
                        )
                        return Credential(key=key, role=m.role, project_roles=roles)
        return None

    async def credentials(self, key_hashes: list[str]) -> dict[str, Credential]:
        found = {h: await self.credential(h) for h in key_hashes}
        return {h: c for h, c in found.items() if c is not None}

    async def record_key_use(self, key_id: UUID, at: datetime) -> None:
        key = self.state.keys[key_id]
        if key.last_used is None or at - key.last_used >= USE_RECORDING_INTERVAL:
            self.state.keys[key_id] = replace(key, last_used=at)
            self.state.key_use_writes += 1

    async def api_key(self, key_id: UUID) -> ApiKey | None:
        key = self.state.keys.get(key_id)
        return key if key and self._visible(key.organization_id) else None

    async def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        return [
            k
            for k in self.state.keys.values()
            if k.organization_id == organization_id and self._visible(k.organization_id)
        ]

    async def save_revocation(self, key: ApiKey) -> None:
        self.state.keys[key.id] = key

    async def audit(self, entry: AuditEntry) -> None:
        assert self._visible(entry.organization_id)
        self.state.audit.append(entry)

    # --- members and invites

    async def lock_organization(self, organization_id: UUID) -> None:
        assert self._visible(organization_id)

    async def add_invite(self, invite: Invite) -> None:
        assert self._visible(invite.organization_id)
        assert all(i.token_hash != invite.token_hash for i in self.state.invites.values())
        self.state.invites[invite.id] = invite

    async def invite(self, invite_id: UUID) -> Invite | None:
        found = self.state.invites.get(invite_id)
        return found if found and self._visible(found.organization_id) else None

    async def invite_by_token(self, token_hash: str) -> Invite | None:
        for i in self.state.invites.values():
            if i.token_hash == token_hash and self._visible(i.organization_id):
                return i
        return None

    async def invites(self, organization_id: UUID) -> list[Invite]:
        found = [i for i in self.state.invites.values() if i.organization_id == organization_id]
        return sorted((i for i in found if self._visible(i.organization_id)), key=lambda i: i.created_at)[
            ::-1
        ]

    async def save_invite(self, invite: Invite) -> None:
        assert self._visible(invite.organization_id)
        self.state.invites[invite.id] = invite

    async def members(self, organization_id: UUID) -> list[Member]:
        if not self._visible(organization_id):
            return []
        by_id = {u.id: u for u in self.state.users.values()}
        return [
            Member(
                m.user_id,
                organization_id,
                by_id[m.user_id].email,
                by_id[m.user_id].name,
                m.role,
                self.state.joined[(organization_id, m.user_id)],
            )
            for m in self.state.memberships
            if m.organization_id == organization_id
        ]

    async def member(self, organization_id: UUID, user_id: UUID) -> Member | None:
        return next((m for m in await self.members(organization_id) if m.user_id == user_id), None)

    async def member_by_email(self, organization_id: UUID, email: str) -> Member | None:
        return next((m for m in await self.members(organization_id) if m.email == email), None)

    async def owner_count(self, organization_id: UUID) -> int:
        return sum(1 for m in await self.members(organization_id) if m.role is Role.OWNER)

    def _membership_index(self, organization_id: UUID, user_id: UUID) -> int:
        assert self._visible(organization_id)
        return next(
            n
            for n, m in enumerate(self.state.memberships)
            if (m.organization_id, m.user_id) == (organization_id, user_id)
        )

    async def save_role(self, organization_id: UUID, user_id: UUID, role: Role) -> None:
        n = self._membership_index(organization_id, user_id)
        self.state.memberships[n] = replace(self.state.memberships[n], role=role)

    async def remove_membership(self, organization_id: UUID, user_id: UUID) -> None:
        del self.state.memberships[self._membership_index(organization_id, user_id)]

    async def revoke_keys_of(self, organization_id: UUID, user_id: UUID, at: datetime) -> int:
        assert self._visible(organization_id)
        mine = [
            k
            for k in self.state.keys.values()
            if (k.organization_id, k.user_id) == (organization_id, user_id) and k.revoked_at is None
        ]
        for k in mine:
            self.state.keys[k.id] = k.revoked(at)
        return len(mine)

    # --- named operators (system scope only, like the table's policy)

    async def add_operator(self, operator: NamedOperator) -> bool:
        assert self.system
        if any(o.name == operator.name for o in self.state.operators.values()):
            return False
        self.state.operators[operator.id] = operator
        return True

    async def operator_by_token(self, token_hash: str) -> NamedOperator | None:
        if not self.system:
            return None
        return next((o for o in self.state.operators.values() if o.token_hash == token_hash), None)

    async def named_operator(self, operator_id: UUID) -> NamedOperator | None:
        return self.state.operators.get(operator_id) if self.system else None

    async def operators(self) -> list[NamedOperator]:
        return list(self.state.operators.values()) if self.system else []

    async def save_operator_revocation(self, operator: NamedOperator) -> None:
        assert self.system
        self.state.operators[operator.id] = operator


class FakeUnitOfWorkFactory:
    """Each unit works on a copy and commits it only when the block ends without an error."""

    def __init__(self) -> None:
        self.state = State()
        self.clock = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
        self.units = 0

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[FakeUnitOfWork]:
        if org_id is None and not system:
            raise ValueError("a unit needs a tenant or system=True")
        self.units += 1
        draft = copy.deepcopy(self.state)
        yield FakeUnitOfWork(draft, self.clock, org_id, system)
        self.state = draft


OPERATOR_TOKEN = "operator-token-for-unit-tests"


@dataclass
class FakeMetrics:
    """Records what the handlers told the authentication counter, in order."""

    outcomes: list[AuthOutcome] = field(default_factory=list)

    legacy_keys: int = 0

    def count_authentication(self, outcome: AuthOutcome) -> None:
        self.outcomes.append(outcome)

    def count_legacy_key(self) -> None:
        self.legacy_keys += 1


def fake_dependencies(
    uow: FakeUnitOfWorkFactory | None = None, metrics: FakeMetrics | None = None
) -> Dependencies:
    metrics = metrics or FakeMetrics()
    return Dependencies(
        uow=uow or FakeUnitOfWorkFactory(),
        operator=OperatorToken(OPERATOR_TOKEN),
        metrics=metrics,
    )
