"""The projects part of the in-memory unit of work (mixed into ``FakeUnitOfWork``), scoped to the unit's
organization the way row-level security scopes it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from services.identity.domain.model import ProjectRole, User
from services.identity.domain.projects import Project, ProjectMember

if TYPE_CHECKING:
    from .fakes import State


@dataclass
class ProjectState:
    projects: dict[UUID, Project] = field(default_factory=dict)
    members: dict[tuple[UUID, UUID], ProjectMember] = field(default_factory=dict)  # (project, user)


class FakeProjects:
    state: State
    clock: datetime

    def _visible(self, organization_id: UUID) -> bool:
        raise NotImplementedError

    @property
    def _p(self) -> ProjectState:
        return self.state.project_state

    async def add_project(self, project: Project) -> None:
        assert self._visible(project.organization_id)
        assert all(
            (p.organization_id, p.slug) != (project.organization_id, project.slug)
            for p in self._p.projects.values()
        ), "UNIQUE (organization_id, slug)"
        self._p.projects[project.id] = project

    async def project(self, project_id: UUID) -> Project | None:
        found = self._p.projects.get(project_id)
        return found if found and self._visible(found.organization_id) else None

    async def project_by_slug(self, organization_id: UUID, slug: str) -> Project | None:
        return next(
            (
                p
                for p in self._p.projects.values()
                if (p.organization_id, p.slug) == (organization_id, slug) and self._visible(p.organization_id)
            ),
            None,
        )

    async def projects(self, organization_id: UUID, *, include_archived: bool) -> list[Project]:
        return [
            p
            for p in self._p.projects.values()
            if p.organization_id == organization_id
            and self._visible(organization_id)
            and (include_archived or not p.archived)
        ]

    async def active_project_count(self, organization_id: UUID) -> int:
        return len(await self.projects(organization_id, include_archived=False))

    async def save_project(self, project: Project) -> None:
        assert self._visible(project.organization_id)
        self._p.projects[project.id] = project

    async def project_member(self, project_id: UUID, user_id: UUID) -> ProjectMember | None:
        found = self._p.members.get((project_id, user_id))
        return found if found and self._visible(found.organization_id) else None

    async def project_members(self, project_id: UUID) -> list[ProjectMember]:
        return [
            m for (p, _), m in self._p.members.items() if p == project_id and self._visible(m.organization_id)
        ]

    def _user(self, user_id: UUID) -> User:
        return next(u for u in self.state.users.values() if u.id == user_id)

    async def save_project_member(
        self, organization_id: UUID, project_id: UUID, user_id: UUID, role: ProjectRole, added_by: UUID
    ) -> None:
        assert self._visible(organization_id)
        assert self._p.projects[project_id].organization_id == organization_id, (
            "FK (organization_id, project_id)"
        )
        assert any(
            (m.organization_id, m.user_id) == (organization_id, user_id) for m in self.state.memberships
        ), "FK to organization_members"
        before = self._p.members.get((project_id, user_id))
        if before is not None:
            self._p.members[(project_id, user_id)] = replace(before, role=role, updated_at=self.clock)
            return
        user = self._user(user_id)
        self._p.members[(project_id, user_id)] = ProjectMember(
            project_id,
            organization_id,
            user_id,
            user.email,
            user.name,
            role,
            added_by,
            self.clock,
            self.clock,
        )

    async def remove_project_member(self, project_id: UUID, user_id: UUID) -> None:
        assert self._visible(self._p.members[(project_id, user_id)].organization_id)
        del self._p.members[(project_id, user_id)]

    async def remove_project_memberships_of(
        self, organization_id: UUID, user_id: UUID
    ) -> list[tuple[UUID, ProjectRole]]:
        assert self._visible(organization_id)
        gone = [
            (p, m.role)
            for (p, u), m in self._p.members.items()
            if u == user_id and m.organization_id == organization_id
        ]
        for p, _ in gone:
            del self._p.members[(p, user_id)]
        return sorted(gone)

    def roles_of(self, organization_id: UUID, user_id: UUID) -> tuple[tuple[UUID, ProjectRole], ...]:
        return tuple(
            sorted(
                (p, m.role)
                for (p, u), m in self._p.members.items()
                if u == user_id and m.organization_id == organization_id
            )
        )
