"""The projects part of the unit of work over PostgreSQL (mixed into ``SqlUnitOfWork``): rows <-> domain
objects, in the unit's transaction (row-level security scopes every statement to its organization)."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ..domain.model import ProjectRole
from ..domain.projects import Project, ProjectMember
from .orm import ProjectMemberRow, ProjectRow, UserRow


def _project(row: ProjectRow) -> Project:
    return Project(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        slug=row.slug,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        archived_at=row.archived_at,
    )


_MEMBER_COLUMNS = (
    col(ProjectMemberRow.project_id),
    col(ProjectMemberRow.organization_id),
    col(ProjectMemberRow.user_id),
    col(UserRow.email),
    col(UserRow.name),
    col(ProjectMemberRow.role),
    col(ProjectMemberRow.added_by),
    col(ProjectMemberRow.created_at),
    col(ProjectMemberRow.updated_at),
)


class ProjectsSql:
    session: AsyncSession

    async def add_project(self, project: Project) -> None:
        await self.session.execute(
            insert(ProjectRow).values(
                id=project.id,
                organization_id=project.organization_id,
                name=project.name,
                slug=project.slug,
                description=project.description,
                created_by=project.created_by,
                created_at=project.created_at,
                updated_at=project.updated_at,
                archived_at=project.archived_at,
            )
        )

    async def project(self, project_id: UUID) -> Project | None:
        row = (
            await self.session.execute(
                select(ProjectRow).where(col(ProjectRow.id) == project_id).with_for_update()
            )
        ).scalar_one_or_none()
        return _project(row) if row else None

    async def project_by_slug(self, organization_id: UUID, slug: str) -> Project | None:
        row = (
            await self.session.execute(
                select(ProjectRow).where(
                    col(ProjectRow.organization_id) == organization_id, col(ProjectRow.slug) == slug
                )
            )
        ).scalar_one_or_none()
        return _project(row) if row else None

    async def projects(self, organization_id: UUID, *, include_archived: bool) -> list[Project]:
        stmt = select(ProjectRow).where(col(ProjectRow.organization_id) == organization_id)
        if not include_archived:
            stmt = stmt.where(col(ProjectRow.archived_at).is_(None))
        rows = await self.session.execute(stmt.order_by(col(ProjectRow.created_at), col(ProjectRow.id)))
        return [_project(r) for r in rows.scalars()]

    async def active_project_count(self, organization_id: UUID) -> int:
        return (
            await self.session.execute(
                select(func.count())
                .select_from(ProjectRow)
                .where(
                    col(ProjectRow.organization_id) == organization_id, col(ProjectRow.archived_at).is_(None)
                )
            )
        ).scalar_one()

    async def save_project(self, project: Project) -> None:
        await self.session.execute(
            update(ProjectRow)
            .where(col(ProjectRow.id) == project.id)
            .values(
                name=project.name,
                slug=project.slug,
                description=project.description,
                archived_at=project.archived_at,
                updated_at=project.updated_at,
            )
        )

    async def _project_members(self, *where: object) -> list[ProjectMember]:
        stmt = (
            select(*_MEMBER_COLUMNS)
            .join(UserRow, col(UserRow.id) == col(ProjectMemberRow.user_id))
            .where(*where)  # type: ignore[arg-type]
            .order_by(col(ProjectMemberRow.created_at), col(ProjectMemberRow.user_id))
        )
        return [
            ProjectMember(p, o, u, e, n, ProjectRole(r), by, at, up)
            for p, o, u, e, n, r, by, at, up in (await self.session.execute(stmt)).all()
        ]

    async def project_member(self, project_id: UUID, user_id: UUID) -> ProjectMember | None:
        found = await self._project_members(
            col(ProjectMemberRow.project_id) == project_id, col(ProjectMemberRow.user_id) == user_id
        )
        return found[0] if found else None

    async def project_members(self, project_id: UUID) -> list[ProjectMember]:
        return await self._project_members(col(ProjectMemberRow.project_id) == project_id)

    async def save_project_member(
        self, organization_id: UUID, project_id: UUID, user_id: UUID, role: ProjectRole, added_by: UUID
    ) -> None:
        stmt = pg_insert(ProjectMemberRow).values(
            id=uuid4(),
            organization_id=organization_id,
            project_id=project_id,
            user_id=user_id,
            role=role.value,
            added_by=added_by,
            created_at=func.now(),
            updated_at=func.now(),
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[col(ProjectMemberRow.project_id), col(ProjectMemberRow.user_id)],
                set_={"role": role.value, "updated_at": func.now()},
            )
        )

    async def remove_project_member(self, project_id: UUID, user_id: UUID) -> None:
        await self.session.execute(
            delete(ProjectMemberRow).where(
                col(ProjectMemberRow.project_id) == project_id, col(ProjectMemberRow.user_id) == user_id
            )
        )

    async def remove_project_memberships_of(
        self, organization_id: UUID, user_id: UUID
    ) -> list[tuple[UUID, ProjectRole]]:
        removed = await self.session.execute(
            delete(ProjectMemberRow)
            .where(
                col(ProjectMemberRow.organization_id) == organization_id,
                col(ProjectMemberRow.user_id) == user_id,
            )
            .returning(col(ProjectMemberRow.project_id), col(ProjectMemberRow.role))
        )
        return sorted((p, ProjectRole(r)) for p, r in removed.all())

    async def project_roles(
        self, organization_id: UUID, user_id: UUID
    ) -> tuple[tuple[UUID, ProjectRole], ...]:
        """The user's roles in the organization's projects (for authentication), by project id."""
        rows = await self.session.execute(
            select(col(ProjectMemberRow.project_id), col(ProjectMemberRow.role))
            .where(
                col(ProjectMemberRow.organization_id) == organization_id,
                col(ProjectMemberRow.user_id) == user_id,
            )
            .order_by(col(ProjectMemberRow.project_id))
        )
        return tuple((p, ProjectRole(r)) for p, r in rows.all())

    async def project_roles_of(
        self, users: set[tuple[UUID, UUID]]
    ) -> dict[tuple[UUID, UUID], tuple[tuple[UUID, ProjectRole], ...]]:
        """:meth:`project_roles` for many (organization, user) pairs in one statement."""
        if not users:
            return {}
        rows = await self.session.execute(
            select(
                col(ProjectMemberRow.organization_id),
                col(ProjectMemberRow.user_id),
                col(ProjectMemberRow.project_id),
                col(ProjectMemberRow.role),
            )
            .where(tuple_(col(ProjectMemberRow.organization_id), col(ProjectMemberRow.user_id)).in_(users))
            .order_by(col(ProjectMemberRow.project_id))
        )
        out: dict[tuple[UUID, UUID], list[tuple[UUID, ProjectRole]]] = {}
        for org, user, project, role in rows.all():
            out.setdefault((org, user), []).append((project, ProjectRole(role)))
        return {pair: tuple(roles) for pair, roles in out.items()}
