"""Who may see and change which jobs, by project (docs/projects.md). Plain Python, no I/O.

The organization stays the tenant boundary (row-level security, and every handler's organization
check). Inside it, projects decide write rights and what a project-bound API key sees:

* Organization owners and admins hold every project (identity sends them an empty role list).
* Members write (submit, cancel, hold, release, re-prioritise) in a project only as its ``owner`` or
  ``contributor``; a project ``viewer``, or a member with no role there, still reads its jobs.
  Viewers of the organization write nothing (the authenticator refuses their writes before this).
* A project-bound key sees only its project's jobs: any other job answers exactly like one that does
  not exist; what it submits lands in its project, and naming another project is refused. Its writes
  still need its user's project role at the moment of the call.
* Jobs without a project behave as before projects: any writer of the organization may change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from shared.errors import NotFound, PermissionDenied

ORG_WIDE_ROLES = frozenset({"owner", "admin"})
PROJECT_WRITERS = frozenset({"owner", "contributor"})


@dataclass(frozen=True)
class Access:
    """The caller's standing, from identity's Principal."""

    org_role: str
    bound_project: UUID | None = None  # the project the API key is bound to
    project_roles: Mapping[UUID, str] = field(default_factory=dict)

    @property
    def holds_every_project(self) -> bool:
        return self.org_role in ORG_WIDE_ROLES

    def sees(self, project: UUID | None) -> bool:
        """Whether a job of ``project`` (None: none) exists for this caller at all."""
        return self.bound_project is None or project == self.bound_project

    def submit_project(self, asked: UUID | None) -> UUID | None:
        """The project a new job lands in: a bound key's own (naming another is refused)."""
        if self.bound_project is None:
            return asked
        if asked is not None and asked != self.bound_project:
            raise PermissionDenied(
                "this API key is bound to a project and submits only into it; omit project_id or name "
                "the key's own project",
                field="project_id",
            )
        return self.bound_project

    def require_write(self, project: UUID | None) -> None:
        """Refuse a change to a job of ``project`` unless the caller's project role allows it."""
        if project is None or self.holds_every_project:
            return
        role = self.project_roles.get(project)
        if role in PROJECT_WRITERS:
            return
        held = f"your role in it is {role}" if role else "you have no role in it"
        raise PermissionDenied(
            f"changing jobs of this project needs its owner or contributor role ({held}); "
            "organization owners and admins hold every project",
            field="project_id",
        )


UNRESTRICTED = Access("owner")
"""Internal callers and tests that act for the organization as a whole."""


def project_id(raw: str, field_name: str = "project_id") -> UUID | None:
    """A project id from the wire: "" is none; a malformed one is unknown, i.e. not found."""
    if not raw:
        return None
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotFound("project not found", field=field_name) from exc
