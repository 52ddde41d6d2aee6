"""Projects inside an organization, their members, and who may do what with them (docs/projects.md).

Plain Python. The rules, one table:

* Organization owners and admins hold every project: they create, rename and archive projects and
  manage any project's members. A project's owner manages that project's members (not projects).
* Any member of the organization reads its projects and their members: inside an organization, projects
  organise work, accounting and write rights; the tenant boundary stays the organization.
* An organization viewer is read-only everywhere, so it can only be a project viewer.
* A project-bound API key sees only its own project (any other reads as absent), cannot create, rename
  or archive projects, and binds the keys it creates to its own project.
* Binding a key to a project needs an organization owner or admin, or the project's owner or
  contributor; an archived project refuses new keys (and new jobs, and member changes: it is read-only).
* Another organization's project, or an unknown id, is "not found": nothing tells it exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID, uuid4

from shared.contracts import limits
from shared.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .model import Principal, ProjectRole, Role

NAME_MAX = limits.MAX_PROJECT_NAME
DESCRIPTION_MAX = limits.MAX_PROJECT_DESCRIPTION
SLUG_MAX = limits.MAX_PROJECT_SLUG
MAX_PROJECTS = limits.MAX_PROJECTS
_SLUG = re.compile(limits.PROJECT_SLUG_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
# The one answer for an unknown project, another organization's, or one a bound key may not see.
PROJECT_NOT_FOUND = "project not found"
# The reason an archived project refuses (REST: 422 ``project-archived``; see the gateway's problems).
ARCHIVED_REASON = "project-archived"


def project_name(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise InvalidArgument("project name is required", field="name")
    if len(value) > NAME_MAX:
        raise InvalidArgument(f"project name must be at most {NAME_MAX} characters", field="name")
    if _CONTROL.search(value):
        raise InvalidArgument("project name must not contain control characters", field="name")
    return value


def project_description(raw: str) -> str:
    value = raw.strip()
    if len(value) > DESCRIPTION_MAX:
        raise InvalidArgument(
            f"description must be at most {DESCRIPTION_MAX} characters", field="description"
        )
    if _CONTROL_BUT_NEWLINES.search(value):
        raise InvalidArgument("description must not contain control characters", field="description")
    return value


def project_slug(raw: str) -> str:
    value = raw.strip()
    if not _SLUG.match(value):
        raise InvalidArgument(
            f"slug must be 1 to {SLUG_MAX} lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit",
            field="slug",
        )
    return value


def slug_from(name: str) -> str:
    """A slug made from a project's name: accents dropped, words joined by dashes, cut to the limit."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    slug = words[:SLUG_MAX].strip("-")
    if not slug:
        raise InvalidArgument("the name gives no slug: set slug (letters, digits and dashes)", field="slug")
    return slug


def project_role(raw: str) -> ProjectRole:
    try:
        return ProjectRole(raw.strip().lower())
    except ValueError:
        raise InvalidArgument(
            f"role must be one of: {', '.join(limits.PROJECT_ROLES)}", field="role"
        ) from None


@dataclass(frozen=True)
class Project:
    id: UUID
    organization_id: UUID
    name: str
    slug: str
    description: str
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def require_active(self, refused: str) -> None:
        """``refused``: what an archived project refuses, for the message (e.g. "new API keys")."""
        if self.archived:
            raise FailedPrecondition(
                f"project {self.slug} is archived: it refuses {refused}",
                field="project_id",
                reason=ARCHIVED_REASON,
            )

    def changed(
        self, now: datetime, *, name: str | None, slug: str | None, description: str | None
    ) -> Project:
        return replace(
            self,
            name=self.name if name is None else name,
            slug=self.slug if slug is None else slug,
            description=self.description if description is None else description,
            updated_at=now,
        )

    def archive(self, now: datetime) -> Project:
        """Archived at ``now``; a project archived before keeps its first archive time."""
        return self if self.archived else replace(self, archived_at=now, updated_at=now)


def new_project(
    organization_id: UUID, name: str, slug: str, description: str, created_by: UUID, now: datetime
) -> Project:
    return Project(uuid4(), organization_id, name, slug, description, created_by, now, now)


@dataclass(frozen=True)
class ProjectMember:
    project_id: UUID
    organization_id: UUID
    user_id: UUID
    email: str
    name: str | None
    role: ProjectRole
    added_by: UUID | None
    added_at: datetime
    updated_at: datetime


# ----------------------------------------------------------------------------- who may do what


def visible(caller: Principal, project: Project | None) -> Project:
    """The project if ``caller`` may see it; else NOT_FOUND, worded as for an id that does not exist."""
    if (
        project is None
        or project.organization_id != caller.organization_id
        or (caller.project_id is not None and project.id != caller.project_id)
    ):
        raise NotFound(PROJECT_NOT_FOUND, field="project_id")
    return project


def require_project_admin(caller: Principal) -> None:
    """Creating, renaming and archiving projects: organization owners and admins, with a key that is
    not bound to a project (a bound key acts inside its project, not on the organization's projects)."""
    if not caller.role.holds_every_project:
        raise PermissionDenied(f"the {caller.role} role cannot create, rename or archive projects")
    if caller.project_id is not None:
        raise PermissionDenied(
            "a project-bound API key cannot create, rename or archive projects", field="project_id"
        )


def require_member_manager(caller: Principal, caller_role: ProjectRole | None) -> None:
    """Managing a project's members: organization owners and admins, or the project's owner
    (``caller_role``: the caller's role in that project now)."""
    if caller.role.holds_every_project:
        return
    if caller.role is Role.MEMBER and caller_role is ProjectRole.OWNER:
        return
    raise PermissionDenied(
        "only the organization's owners and admins and the project's owners manage its members"
    )


def require_may_hold(member_role: Role, role: ProjectRole) -> None:
    """An organization viewer is read-only everywhere: only a project viewer."""
    if member_role is Role.VIEWER and role is not ProjectRole.VIEWER:
        raise FailedPrecondition(
            "an organization viewer is read-only everywhere: they can only be a project viewer",
            field="role",
        )


def require_may_bind_key(caller: Principal, caller_role: ProjectRole | None) -> None:
    """Creating a key bound to a project: organization owners and admins, or the project's owners and
    contributors (organization viewers never write)."""
    if caller.role.holds_every_project:
        return
    if caller.role is Role.MEMBER and caller_role is not None and caller_role.writes:
        return
    raise PermissionDenied(
        "only the organization's owners and admins and the project's owners and contributors "
        "may create API keys bound to it",
        field="project_id",
    )


def bound_project(caller: Principal, requested: UUID | None) -> UUID | None:
    """The project a key ``caller`` creates is bound to: the one requested, and for a bound caller its
    own (another is refused: a bound key cannot mint a key that escapes its project)."""
    if caller.project_id is None:
        return requested
    if requested is not None and requested != caller.project_id:
        raise PermissionDenied(
            "this API key is bound to a project: the keys it creates are bound to the same project",
            field="project_id",
        )
    return caller.project_id
