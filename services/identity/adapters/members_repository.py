"""The members, invites and operators part of the unit of work over PostgreSQL (mixed into
``SqlUnitOfWork``): rows <-> domain objects, in the unit's transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ..domain.members import Invite, InviteKind, Member
from ..domain.model import Role
from ..domain.operator import NamedOperator
from .orm import ApiKeyRow, InviteRow, MembershipRow, OperatorRow, OrganizationRow, UserRow


def _invite(row: InviteRow) -> Invite:
    return Invite(
        id=row.id,
        organization_id=row.organization_id,
        kind=InviteKind(row.kind),
        email=row.email,
        role=Role(row.role),
        prefix=row.prefix,
        token_hash=row.token_hash,
        max_uses=row.max_uses,
        uses=row.uses,
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by_user_id=row.created_by_user_id,
        revoked_at=row.revoked_at,
    )


def _operator(row: OperatorRow) -> NamedOperator:
    return NamedOperator(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        token_hash=row.token_hash,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


_MEMBER_COLUMNS = (
    col(MembershipRow.user_id),
    col(MembershipRow.organization_id),
    col(UserRow.email),
    col(UserRow.name),
    col(MembershipRow.role),
    col(MembershipRow.created_at),
)


class MembersSql:
    session: AsyncSession

    async def lock_organization(self, organization_id: UUID) -> None:
        await self.session.execute(
            select(col(OrganizationRow.id))
            .where(col(OrganizationRow.id) == organization_id)
            .with_for_update()
        )

    # --- invites

    async def add_invite(self, invite: Invite) -> None:
        await self.session.execute(
            insert(InviteRow).values(
                id=invite.id,
                organization_id=invite.organization_id,
                kind=invite.kind.value,
                email=invite.email,
                role=invite.role.value,
                prefix=invite.prefix,
                token_hash=invite.token_hash,
                max_uses=invite.max_uses,
                uses=invite.uses,
                expires_at=invite.expires_at,
                revoked_at=invite.revoked_at,
                created_by_user_id=invite.created_by_user_id,
                created_at=invite.created_at,
                updated_at=invite.created_at,
            )
        )

    async def invite(self, invite_id: UUID) -> Invite | None:
        row = (
            await self.session.execute(
                select(InviteRow).where(col(InviteRow.id) == invite_id).with_for_update()
            )
        ).scalar_one_or_none()
        return _invite(row) if row else None

    async def invite_by_token(self, token_hash: str) -> Invite | None:
        row = (
            await self.session.execute(
                select(InviteRow).where(col(InviteRow.token_hash) == token_hash).with_for_update()
            )
        ).scalar_one_or_none()
        return _invite(row) if row else None

    async def invites(self, organization_id: UUID) -> list[Invite]:
        rows = await self.session.execute(
            select(InviteRow)
            .where(col(InviteRow.organization_id) == organization_id)
            .order_by(col(InviteRow.created_at).desc(), col(InviteRow.id))
        )
        return [_invite(r) for r in rows.scalars()]

    async def save_invite(self, invite: Invite) -> None:
        await self.session.execute(
            update(InviteRow)
            .where(col(InviteRow.id) == invite.id)
            .values(uses=invite.uses, revoked_at=invite.revoked_at, updated_at=func.now())
        )

    # --- members

    async def _members(self, organization_id: UUID, *where: object) -> list[Member]:
        stmt = (
            select(*_MEMBER_COLUMNS)
            .join(UserRow, col(UserRow.id) == col(MembershipRow.user_id))
            .where(col(MembershipRow.organization_id) == organization_id, *where)  # type: ignore[arg-type]
            .order_by(col(MembershipRow.created_at), col(MembershipRow.user_id))
        )
        return [
            Member(user_id=u, organization_id=o, email=e, name=n, role=Role(r), joined_at=at)
            for u, o, e, n, r, at in (await self.session.execute(stmt)).all()
        ]

    async def member(self, organization_id: UUID, user_id: UUID) -> Member | None:
        found = await self._members(organization_id, col(MembershipRow.user_id) == user_id)
        return found[0] if found else None

    async def member_by_email(self, organization_id: UUID, email: str) -> Member | None:
        found = await self._members(organization_id, col(UserRow.email) == email)
        return found[0] if found else None

    async def members(self, organization_id: UUID) -> list[Member]:
        return await self._members(organization_id)

    async def owner_count(self, organization_id: UUID) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(MembershipRow)
                .where(
                    col(MembershipRow.organization_id) == organization_id,
                    col(MembershipRow.role) == Role.OWNER.value,
                )
            )
        ).scalar_one()

    async def save_role(self, organization_id: UUID, user_id: UUID, role: Role) -> None:
        await self.session.execute(
            update(MembershipRow)
            .where(
                col(MembershipRow.organization_id) == organization_id, col(MembershipRow.user_id) == user_id
            )
            .values(role=role.value, updated_at=func.now())
        )

    async def remove_membership(self, organization_id: UUID, user_id: UUID) -> None:
        await self.session.execute(
            delete(MembershipRow).where(
                col(MembershipRow.organization_id) == organization_id, col(MembershipRow.user_id) == user_id
            )
        )

    async def revoke_keys_of(self, organization_id: UUID, user_id: UUID, at: datetime) -> int:
        revoked = await self.session.execute(
            update(ApiKeyRow)
            .where(
                col(ApiKeyRow.organization_id) == organization_id,
                col(ApiKeyRow.user_id) == user_id,
                col(ApiKeyRow.revoked_at).is_(None),
            )
            .values(revoked_at=at, updated_at=func.now())
            .returning(col(ApiKeyRow.id))
        )
        return len(revoked.all())

    # --- named operators

    async def add_operator(self, operator: NamedOperator) -> bool:
        added = await self.session.execute(
            pg_insert(OperatorRow)
            .values(
                id=operator.id,
                name=operator.name,
                prefix=operator.prefix,
                token_hash=operator.token_hash,
                created_by=operator.created_by,
                created_at=operator.created_at,
            )
            .on_conflict_do_nothing(index_elements=[col(OperatorRow.name)])
            .returning(col(OperatorRow.id))
        )
        return added.scalar_one_or_none() is not None

    async def operator_by_token(self, token_hash: str) -> NamedOperator | None:
        row = (
            await self.session.execute(select(OperatorRow).where(col(OperatorRow.token_hash) == token_hash))
        ).scalar_one_or_none()
        return _operator(row) if row else None

    async def named_operator(self, operator_id: UUID) -> NamedOperator | None:
        row = (
            await self.session.execute(
                select(OperatorRow).where(col(OperatorRow.id) == operator_id).with_for_update()
            )
        ).scalar_one_or_none()
        return _operator(row) if row else None

    async def operators(self) -> list[NamedOperator]:
        rows = await self.session.execute(
            select(OperatorRow).order_by(col(OperatorRow.created_at), col(OperatorRow.id))
        )
        return [_operator(r) for r in rows.scalars()]

    async def save_operator_revocation(self, operator: NamedOperator) -> None:
        await self.session.execute(
            update(OperatorRow)
            .where(col(OperatorRow.id) == operator.id)
            .values(revoked_at=operator.revoked_at, revoked_by=operator.revoked_by)
        )
