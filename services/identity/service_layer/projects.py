"""Project handlers: create, list, get, change, archive projects; list, get, set and remove their members;
resolve a project for another service (docs/projects.md; the rules are in ``domain/projects.py``).

Every call runs in its caller's organization, so row-level security backs up the explicit filters, and
every change writes its audit row in the same transaction. Creating projects and changing slugs are
serialised per organization (``lock_organization``), so the slug check and the project cap hold under
concurrent calls. The caller's own project role is read in the same transaction as the change it
permits, not taken from the (up to a second old) principal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from shared.errors import Conflict, FailedPrecondition, NotFound

from ..domain import projects as rules
from ..domain.model import AuditEntry, Principal
from ..domain.projects import Project, ProjectMember
from . import commands
from .dependencies import Dependencies
from .unit_of_work import IdentityUnitOfWork

MEMBER_NOT_FOUND = "project member not found"


def _details(project: Project) -> dict[str, Any]:
    return {"name": project.name, "slug": project.slug, "description": project.description}


async def _visible_project(tx: IdentityUnitOfWork, caller: Principal, project_id: UUID | None) -> Project:
    return rules.visible(caller, await tx.project(project_id) if project_id else None)


async def _free_slug(
    tx: IdentityUnitOfWork, organization_id: UUID, slug: str, keep: UUID | None = None
) -> None:
    found = await tx.project_by_slug(organization_id, slug)
    if found is not None and found.id != keep:
        raise Conflict(f"a project with slug {slug} exists already (archived ones keep theirs)", field="slug")


async def create_project(cmd: commands.CreateProject, deps: Dependencies) -> Project:
    caller = cmd.caller
    rules.require_project_admin(caller)
    name = rules.project_name(cmd.name)
    slug = rules.project_slug(cmd.slug) if cmd.slug.strip() else rules.slug_from(name)
    description = rules.project_description(cmd.description)
    org_id = caller.organization_id
    async with deps.uow(org_id=org_id) as tx:
        await tx.lock_organization(org_id)
        if await tx.active_project_count(org_id) >= rules.MAX_PROJECTS:
            raise FailedPrecondition(
                f"an organization has at most {rules.MAX_PROJECTS} projects that are not archived"
            )
        await _free_slug(tx, org_id, slug)
        project = rules.new_project(org_id, name, slug, description, caller.user_id, await tx.now())
        await tx.add_project(project)
        await tx.audit(AuditEntry.by(caller, "project.created", "project", project.id, **_details(project)))
    return project


async def list_projects(cmd: commands.ListProjects, deps: Dependencies) -> list[Project]:
    caller = cmd.caller
    async with deps.uow(org_id=caller.organization_id) as tx:
        found = await tx.projects(caller.organization_id, include_archived=cmd.include_archived)
    return [p for p in found if caller.project_id is None or p.id == caller.project_id]


async def get_project(cmd: commands.GetProject, deps: Dependencies) -> Project:
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        return await _visible_project(tx, cmd.caller, cmd.project_id)


async def update_project(cmd: commands.UpdateProject, deps: Dependencies) -> Project:
    caller = cmd.caller
    rules.require_project_admin(caller)
    name = rules.project_name(cmd.name) if cmd.name is not None else None
    slug = rules.project_slug(cmd.slug) if cmd.slug is not None else None
    description = rules.project_description(cmd.description) if cmd.description is not None else None
    org_id = caller.organization_id
    async with deps.uow(org_id=org_id) as tx:
        await tx.lock_organization(org_id)
        before = await _visible_project(tx, caller, cmd.project_id)
        before.require_active("changes")
        if slug is not None:
            await _free_slug(tx, org_id, slug, keep=before.id)
        after = before.changed(await tx.now(), name=name, slug=slug, description=description)
        if _details(after) == _details(before):
            return before
        await tx.save_project(after)
        await tx.audit(
            AuditEntry.by(
                caller, "project.updated", "project", after.id, before=_details(before), after=_details(after)
            )
        )
    return after


async def archive_project(cmd: commands.ArchiveProject, deps: Dependencies) -> Project:
    """Archiving an archived project changes nothing. Its jobs, costs, members and keys stay; its keys
    keep reading it, and nothing new (jobs, keys, members) enters it."""
    caller = cmd.caller
    rules.require_project_admin(caller)
    async with deps.uow(org_id=caller.organization_id) as tx:
        project = await _visible_project(tx, caller, cmd.project_id)
        if project.archived:
            return project
        project = project.archive(await tx.now())
        await tx.save_project(project)
        await tx.audit(AuditEntry.by(caller, "project.archived", "project", project.id, slug=project.slug))
    return project


async def list_project_members(cmd: commands.ListProjectMembers, deps: Dependencies) -> list[ProjectMember]:
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        project = await _visible_project(tx, cmd.caller, cmd.project_id)
        return await tx.project_members(project.id)


async def get_project_member(cmd: commands.GetProjectMember, deps: Dependencies) -> ProjectMember:
    async with deps.uow(org_id=cmd.caller.organization_id) as tx:
        project = await _visible_project(tx, cmd.caller, cmd.project_id)
        found = await tx.project_member(project.id, cmd.user_id) if cmd.user_id else None
    if found is None:
        raise NotFound(MEMBER_NOT_FOUND, field="user_id")
    return found


async def set_project_member(cmd: commands.SetProjectMember, deps: Dependencies) -> ProjectMember:
    """Adds a member of the organization to the project with ``role``, or changes their role there."""
    caller = cmd.caller
    role = rules.project_role(cmd.role)
    async with deps.uow(org_id=caller.organization_id) as tx:
        project = await _visible_project(tx, caller, cmd.project_id)
        mine = await tx.project_member(project.id, caller.user_id)
        rules.require_member_manager(caller, mine.role if mine else None)
        project.require_active("member changes")
        member = await tx.member(caller.organization_id, cmd.user_id) if cmd.user_id else None
        if member is None:
            raise NotFound("no member of the organization has this id", field="user_id")
        rules.require_may_hold(member.role, role)
        before = await tx.project_member(project.id, member.user_id)
        if before is not None and before.role is role:
            return before
        await tx.save_project_member(caller.organization_id, project.id, member.user_id, role, caller.user_id)
        if before is None:
            entry = AuditEntry.by(
                caller,
                "project_member.added",
                "user",
                member.user_id,
                project_id=str(project.id),
                role=role.value,
            )
        else:
            entry = AuditEntry.by(
                caller,
                "project_member.role_changed",
                "user",
                member.user_id,
                project_id=str(project.id),
                before=before.role.value,
                after=role.value,
            )
        await tx.audit(entry)
        after = await tx.project_member(project.id, member.user_id)
    assert after is not None  # written in this very transaction
    return after


async def remove_project_member(cmd: commands.RemoveProjectMember, deps: Dependencies) -> ProjectMember:
    """Anyone may leave a project; removing someone else needs a member manager. Allowed in an archived
    project too (it only takes rights away)."""
    caller = cmd.caller
    async with deps.uow(org_id=caller.organization_id) as tx:
        project = await _visible_project(tx, caller, cmd.project_id)
        target = await tx.project_member(project.id, cmd.user_id) if cmd.user_id else None
        if target is None:
            raise NotFound(MEMBER_NOT_FOUND, field="user_id")
        if target.user_id != caller.user_id:
            mine = await tx.project_member(project.id, caller.user_id)
            rules.require_member_manager(caller, mine.role if mine else None)
        await tx.remove_project_member(project.id, target.user_id)
        await tx.audit(
            AuditEntry.by(
                caller,
                "project_member.removed",
                "user",
                target.user_id,
                project_id=str(project.id),
                role=target.role.value,
            )
        )
    return target


async def resolve_project(cmd: commands.ResolveProject, deps: Dependencies) -> Project:
    """For a service: the project its caller named, as that caller's key may see it."""
    from .handlers import authenticate  # the one authentication; handlers imports this module

    caller = await authenticate(commands.Authenticate(cmd.api_key), deps)
    assert isinstance(caller, Principal)  # operator_allowed is False: never an operator
    async with deps.uow(org_id=caller.organization_id) as tx:
        return await _visible_project(tx, caller, cmd.project_id)


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.CreateProject: create_project,
    commands.ListProjects: list_projects,
    commands.GetProject: get_project,
    commands.UpdateProject: update_project,
    commands.ArchiveProject: archive_project,
    commands.ListProjectMembers: list_project_members,
    commands.GetProjectMember: get_project_member,
    commands.SetProjectMember: set_project_member,
    commands.RemoveProjectMember: remove_project_member,
    commands.ResolveProject: resolve_project,
}
