"""An in-memory unit of work for identity's handlers: committed state, a settable clock, and the
organization scope enforced the way row-level security enforces it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from services.identity.domain.model import (
    USE_RECORDING_INTERVAL,
    ApiKey,
    AuditEntry,
    AuthOutcome,
    Membership,
    Organization,
    User,
)
from services.identity.domain.operator import OperatorToken
from services.identity.service_layer.handlers import Dependencies
from services.identity.service_layer.unit_of_work import Credential


@dataclass
class State:
    organizations: dict[UUID, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)  # by email
    memberships: list[Membership] = field(default_factory=list)
    keys: dict[UUID, ApiKey] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    key_use_writes: int = 0


class FakeUnitOfWork:
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
        self.state.memberships.append(membership)

    async def add_api_key(self, key: ApiKey) -> None:
        assert self._visible(key.organization_id)
        self.state.keys[key.id] = key

    async def credential(self, key_hash: str) -> Credential | None:
        for key in self.state.keys.values():
            if key.key_hash == key_hash and self._visible(key.organization_id):
                for m in self.state.memberships:
                    if (m.user_id, m.organization_id) == (key.user_id, key.organization_id):
                        return Credential(key=key, role=m.role)
        return None

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
