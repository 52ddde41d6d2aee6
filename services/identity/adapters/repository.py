"""The unit of work over PostgreSQL: one ``Database.transaction`` per unit, rows <-> domain objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from shared.db import Database

from ..domain.model import USE_RECORDING_INTERVAL, ApiKey, AuditEntry, Membership, Organization, Role, User
from ..service_layer.unit_of_work import Credential, IdentityUnitOfWork, UnitOfWorkFactory
from .audit_repository import AuditSql, entry_values
from .members_repository import MembersSql
from .orm import ApiKeyRow, AuditRow, MembershipRow, OrganizationRow, UserRow
from .projects_repository import ProjectsSql


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        organization_id=row.organization_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used=row.last_used,
        revoked_at=row.revoked_at,
        project_id=row.project_id,
    )


def _keys_with_roles() -> Select[ApiKeyRow, str]:
    """API keys joined to their owner's membership (its role) in the key's organization."""
    return select(ApiKeyRow, col(MembershipRow.role)).join(
        MembershipRow,
        and_(
            col(MembershipRow.user_id) == col(ApiKeyRow.user_id),
            col(MembershipRow.organization_id) == col(ApiKeyRow.organization_id),
        ),
    )


class SqlUnitOfWork(MembersSql, AuditSql, ProjectsSql, IdentityUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def now(self) -> datetime:
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def add_organization(self, organization: Organization) -> None:
        await self.session.execute(
            insert(OrganizationRow).values(
                id=organization.id,
                name=organization.name,
                created_at=organization.created_at,
                updated_at=organization.created_at,
            )
        )

    async def organization(self, organization_id: UUID) -> Organization | None:
        row = (
            await self.session.execute(
                select(OrganizationRow).where(col(OrganizationRow.id) == organization_id)
            )
        ).scalar_one_or_none()
        return Organization(id=row.id, name=row.name, created_at=row.created_at) if row else None

    async def ensure_user(self, user: User, default_organization_id: UUID) -> tuple[User, bool]:
        # ON CONFLICT waits for a concurrent insert of the same email, so two operators creating
        # organizations for one new person end up with one user, not a unique violation.
        created = (
            await self.session.execute(
                pg_insert(UserRow)
                .values(
                    id=user.id,
                    email=user.email,
                    name=user.name,
                    default_organization_id=default_organization_id,
                    created_at=func.now(),
                    updated_at=func.now(),
                )
                .on_conflict_do_nothing(index_elements=[col(UserRow.email)])
                .returning(col(UserRow.id))
            )
        ).scalar_one_or_none()
        if created is not None:
            return user, True
        row = (
            await self.session.execute(select(UserRow).where(col(UserRow.email) == user.email))
        ).scalar_one()
        if row.default_organization_id is None:
            await self.session.execute(
                update(UserRow)
                .where(col(UserRow.id) == row.id)
                .values(default_organization_id=default_organization_id, updated_at=func.now())
            )
        return User(id=row.id, email=row.email, name=row.name), False

    async def add_membership(self, membership: Membership) -> None:
        await self.session.execute(
            insert(MembershipRow).values(
                id=uuid4(),
                user_id=membership.user_id,
                organization_id=membership.organization_id,
                role=membership.role.value,
                created_at=func.now(),
                updated_at=func.now(),
            )
        )

    async def add_api_key(self, key: ApiKey) -> None:
        await self.session.execute(
            insert(ApiKeyRow).values(
                id=key.id,
                organization_id=key.organization_id,
                user_id=key.user_id,
                name=key.name,
                prefix=key.prefix,
                key_hash=key.key_hash,
                scopes=list(key.scopes),
                expires_at=key.expires_at,
                last_used=key.last_used,
                revoked_at=key.revoked_at,
                created_at=key.created_at,
                updated_at=key.created_at,
                project_id=key.project_id,
            )
        )

    async def credential(self, key_hash: str) -> Credential | None:
        stmt = _keys_with_roles().where(col(ApiKeyRow.key_hash) == key_hash)
        found = (await self.session.execute(stmt)).first()
        if found is None:
            return None
        key, role = _api_key(found[0]), Role(found[1])
        # Owners and admins hold every project: their principal lists none (docs/projects.md).
        roles = () if role.holds_every_project else await self.project_roles(key.organization_id, key.user_id)
        return Credential(key=key, role=role, project_roles=roles)

    async def credentials(self, key_hashes: list[str]) -> dict[str, Credential]:
        """:meth:`credential` for many keys in two statements (the keys, then every project role their
        users hold), by hash; keys not found are left out."""
        if not key_hashes:
            return {}
        stmt = _keys_with_roles().where(col(ApiKeyRow.key_hash).in_(key_hashes))
        found = [(_api_key(row), Role(role)) for row, role in (await self.session.execute(stmt)).all()]
        roles = await self.project_roles_of(
            {(k.organization_id, k.user_id) for k, role in found if not role.holds_every_project}
        )
        return {
            k.key_hash: Credential(
                key=k, role=role, project_roles=roles.get((k.organization_id, k.user_id), ())
            )
            for k, role in found
        }

    async def record_key_use(self, key_id: UUID, at: datetime) -> None:
        # The guard makes concurrent authentications of one key write at most once per interval.
        await self.session.execute(
            update(ApiKeyRow)
            .where(
                col(ApiKeyRow.id) == key_id,
                or_(
                    col(ApiKeyRow.last_used).is_(None),
                    col(ApiKeyRow.last_used) <= at - USE_RECORDING_INTERVAL,
                ),
            )
            .values(last_used=at)
        )

    async def api_key(self, key_id: UUID) -> ApiKey | None:
        row = (
            await self.session.execute(select(ApiKeyRow).where(col(ApiKeyRow.id) == key_id).with_for_update())
        ).scalar_one_or_none()
        return _api_key(row) if row else None

    async def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        rows = await self.session.execute(
            select(ApiKeyRow)
            .where(col(ApiKeyRow.organization_id) == organization_id)
            .order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))
        )
        return [_api_key(r) for r in rows.scalars()]

    async def save_revocation(self, key: ApiKey) -> None:
        await self.session.execute(
            update(ApiKeyRow)
            .where(col(ApiKeyRow.id) == key.id)
            .values(revoked_at=key.revoked_at, updated_at=func.now())
        )

    async def audit(self, entry: AuditEntry) -> None:
        await self.session.execute(insert(AuditRow).values(**entry_values(entry)))  # the one log (005)


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    @asynccontextmanager
    async def unit(*, org_id: UUID | None = None, system: bool = False) -> AsyncIterator[IdentityUnitOfWork]:
        async with db.transaction(org_id=org_id, system=system) as session:
            yield SqlUnitOfWork(session)

    return unit
