"""Projects (identity; docs/projects.md): an organization's projects and their members.

Organization owners and admins create, rename and archive projects (``DELETE`` archives: the project
keeps its jobs, costs and members and takes nothing new); they and a project's owners manage its members.
Any member reads (``projects:read``); a project-bound key sees only its own project. Another
organization's project, or an unknown id, is a 404 that says nothing more.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from gpufleet.v1 import identity_pb2

from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.responses_projects import (
    ProjectCreate,
    ProjectListOut,
    ProjectMemberListOut,
    ProjectMemberOut,
    ProjectMemberSet,
    ProjectOut,
    ProjectUpdate,
    project_member_out,
    project_out,
)
from services.gateway.entrypoints.routes import problem_responses

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectOut,
    responses=problem_responses(409, 422),
    summary="Create a project (organization owners and admins)",
)
async def create_project(body: ProjectCreate, caller: CallerDep, down: DownstreamDep) -> ProjectOut:
    created = await down.projects.CreateProject(
        identity_pb2.CreateProjectRequest(
            name=body.name, slug=body.slug or "", description=body.description or ""
        ),
        **caller.call,
    )
    return project_out(created)


@router.get("", response_model=ProjectListOut, responses=problem_responses(422), summary="List projects")
async def list_projects(
    caller: CallerDep,
    down: DownstreamDep,
    include_archived: Annotated[bool, Query(description="Archived projects too.")] = False,
) -> ProjectListOut:
    reply = await down.projects.ListProjects(
        identity_pb2.ListProjectsRequest(include_archived=include_archived), **caller.call
    )
    return ProjectListOut(projects=[project_out(p) for p in reply.projects])


@router.get("/{project_id}", response_model=ProjectOut, responses=problem_responses(404), summary="A project")
async def get_project(project_id: str, caller: CallerDep, down: DownstreamDep) -> ProjectOut:
    found = await down.projects.GetProject(
        identity_pb2.GetProjectRequest(id=resource_id(project_id)), **caller.call
    )
    return project_out(found)


@router.patch(
    "/{project_id}",
    response_model=ProjectOut,
    responses=problem_responses(404, 409, 422),
    summary="Rename a project, change its slug or description (organization owners and admins)",
)
async def update_project(
    project_id: str, body: ProjectUpdate, caller: CallerDep, down: DownstreamDep
) -> ProjectOut:
    request = identity_pb2.UpdateProjectRequest(id=resource_id(project_id))
    if body.name is not None:
        request.name = body.name
    if body.slug is not None:
        request.slug = body.slug
    if body.description is not None:
        request.description = body.description
    return project_out(await down.projects.UpdateProject(request, **caller.call))


@router.delete(
    "/{project_id}",
    response_model=ProjectOut,
    responses=problem_responses(404),
    summary="Archive a project (its jobs and costs stay readable; it takes no new jobs or keys)",
)
async def archive_project(project_id: str, caller: CallerDep, down: DownstreamDep) -> ProjectOut:
    archived = await down.projects.ArchiveProject(
        identity_pb2.ArchiveProjectRequest(id=resource_id(project_id)), **caller.call
    )
    return project_out(archived)


# ----------------------------------------------------------------------------- members


@router.get(
    "/{project_id}/members",
    response_model=ProjectMemberListOut,
    responses=problem_responses(404),
    summary="A project's members",
)
async def list_project_members(
    project_id: str, caller: CallerDep, down: DownstreamDep
) -> ProjectMemberListOut:
    reply = await down.projects.ListProjectMembers(
        identity_pb2.ListProjectMembersRequest(project_id=resource_id(project_id)), **caller.call
    )
    return ProjectMemberListOut(members=[project_member_out(m) for m in reply.members])


@router.get(
    "/{project_id}/members/{user_id}",
    response_model=ProjectMemberOut,
    responses=problem_responses(404),
    summary="A user's membership of a project",
)
async def get_project_member(
    project_id: str, user_id: str, caller: CallerDep, down: DownstreamDep
) -> ProjectMemberOut:
    found = await down.projects.GetProjectMember(
        identity_pb2.GetProjectMemberRequest(
            project_id=resource_id(project_id), user_id=resource_id(user_id)
        ),
        **caller.call,
    )
    return project_member_out(found)


@router.put(
    "/{project_id}/members/{user_id}",
    response_model=ProjectMemberOut,
    responses=problem_responses(404, 409, 422),
    summary="Add a member of the organization to a project, or change their role there",
)
async def set_project_member(
    project_id: str, user_id: str, body: ProjectMemberSet, caller: CallerDep, down: DownstreamDep
) -> ProjectMemberOut:
    member = await down.projects.SetProjectMember(
        identity_pb2.SetProjectMemberRequest(
            project_id=resource_id(project_id), user_id=resource_id(user_id), role=body.role
        ),
        **caller.call,
    )
    return project_member_out(member)


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
    summary="Remove a user from a project (anyone may leave one)",
)
async def remove_project_member(
    project_id: str, user_id: str, caller: CallerDep, down: DownstreamDep
) -> Response:
    await down.projects.RemoveProjectMember(
        identity_pb2.RemoveProjectMemberRequest(
            project_id=resource_id(project_id), user_id=resource_id(user_id)
        ),
        **caller.call,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
