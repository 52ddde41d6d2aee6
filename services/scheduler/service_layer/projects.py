"""Which project a new job lands in, and whether it may (docs/projects.md, "Scheduler").

The scheduler never reads identity's tables. What it knows of projects comes from identity:

* the caller's Principal (``Access``): the key's bound project and the user's project roles, which
  decide write rights (owners and admins hold every project);
* :class:`ProjectDirectory` (identity's ``ProjectService/ResolveProject`` with the caller's own key,
  cached for a couple of seconds): whether a project the caller names exists in the caller's
  organization, as that key may see it, and whether it is archived. Asked at submit only: a job's
  project never changes afterwards, and jobs of an archived project stay readable and changeable.

An unknown project, another organization's, or (for a bound key) another project of the same
organization is NOT_FOUND, exactly as a project that does not exist; an archived one is
FAILED_PRECONDITION on ``project_id`` (the gateway's 422 ``project-archived``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol
from uuid import UUID

from shared.errors import FailedPrecondition, NotFound, Unavailable

from ..domain.access import Access


class ProjectState(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class ProjectDirectory(Protocol):
    """identity's answer for a project the caller named, as the caller's key may see it: None when
    it does not exist for that key (unknown, another organization's, or another project than the
    key is bound to)."""

    async def state(self, api_key: str | None, project_id: UUID) -> ProjectState | None: ...


class ProjectArchived(FailedPrecondition):
    """An archived project keeps its jobs and costs but takes no new jobs."""


async def admit_project(
    access: Access, asked: UUID | None, api_key: str | None, directory: ProjectDirectory | None
) -> UUID | None:
    """The project a submit lands in (None: none), once identity vouched for it and the caller's role
    there allows writing."""
    project = access.submit_project(asked)
    if project is None:
        return None
    if directory is None:
        raise Unavailable("projects cannot be checked by this scheduler; submit without project_id")
    state = await directory.state(api_key, project)
    if state is None:
        raise NotFound("project not found", field="project_id")
    if state is ProjectState.ARCHIVED:
        raise ProjectArchived(
            "the project is archived: its jobs stay readable but it takes no new jobs", field="project_id"
        )
    access.require_write(project)
    return project
