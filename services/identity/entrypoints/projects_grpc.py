"""The ProjectService servicer (docs/projects.md): wire messages to commands and results back.

Like ``IdentityServicer``, it resolves the caller's key in-process and holds it to the method's scope
(``shared.scopes``). ``ResolveProject`` is the services' own call: the key is in the request."""

from __future__ import annotations

import grpc
from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from shared.grpc import grpc_service
from shared.wire import ts

from ..domain.model import Principal
from ..domain.projects import Project, ProjectMember
from ..service_layer import commands
from ..service_layer.handlers import Dependencies, handle
from .grpc_server import _key_id, key_caller


def project_out(p: Project) -> identity_pb2.Project:
    return identity_pb2.Project(
        id=str(p.id),
        name=p.name,
        slug=p.slug,
        description=p.description,
        created_by_user_id=str(p.created_by) if p.created_by else "",
        created_at=ts(p.created_at),
        updated_at=ts(p.updated_at),
        archived_at=ts(p.archived_at),
        organization_id=str(p.organization_id),
    )


def member_out(m: ProjectMember) -> identity_pb2.ProjectMember:
    return identity_pb2.ProjectMember(
        project_id=str(m.project_id),
        user_id=str(m.user_id),
        email=m.email,
        name=m.name or "",
        role=m.role.value,
        added_by_user_id=str(m.added_by) if m.added_by else "",
        added_at=ts(m.added_at),
        updated_at=ts(m.updated_at),
    )


_id = _key_id  # a malformed id is unknown: NOT_FOUND, like another organization's


@grpc_service
class ProjectServicer(identity_pb2_grpc.ProjectServiceServicer):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        return await key_caller(self.deps, context)

    async def CreateProject(
        self, request: identity_pb2.CreateProjectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Project:
        cmd = commands.CreateProject(
            caller=await self._caller(context),
            name=request.name,
            slug=request.slug,
            description=request.description,
        )
        return project_out(await handle(cmd, self.deps))

    async def ListProjects(
        self, request: identity_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListProjectsResponse:
        cmd = commands.ListProjects(
            caller=await self._caller(context), include_archived=request.include_archived
        )
        found: list[Project] = await handle(cmd, self.deps)
        return identity_pb2.ListProjectsResponse(projects=[project_out(p) for p in found])

    async def GetProject(
        self, request: identity_pb2.GetProjectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Project:
        cmd = commands.GetProject(caller=await self._caller(context), project_id=_id(request.id))
        return project_out(await handle(cmd, self.deps))

    async def UpdateProject(
        self, request: identity_pb2.UpdateProjectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Project:
        cmd = commands.UpdateProject(
            caller=await self._caller(context),
            project_id=_id(request.id),
            name=request.name if request.HasField("name") else None,
            slug=request.slug if request.HasField("slug") else None,
            description=request.description if request.HasField("description") else None,
        )
        return project_out(await handle(cmd, self.deps))

    async def ArchiveProject(
        self, request: identity_pb2.ArchiveProjectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Project:
        cmd = commands.ArchiveProject(caller=await self._caller(context), project_id=_id(request.id))
        return project_out(await handle(cmd, self.deps))

    async def ListProjectMembers(
        self, request: identity_pb2.ListProjectMembersRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListProjectMembersResponse:
        cmd = commands.ListProjectMembers(
            caller=await self._caller(context), project_id=_id(request.project_id)
        )
        found: list[ProjectMember] = await handle(cmd, self.deps)
        return identity_pb2.ListProjectMembersResponse(members=[member_out(m) for m in found])

    async def GetProjectMember(
        self, request: identity_pb2.GetProjectMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ProjectMember:
        cmd = commands.GetProjectMember(
            caller=await self._caller(context),
            project_id=_id(request.project_id),
            user_id=_id(request.user_id),
        )
        return member_out(await handle(cmd, self.deps))

    async def SetProjectMember(
        self, request: identity_pb2.SetProjectMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ProjectMember:
        cmd = commands.SetProjectMember(
            caller=await self._caller(context),
            project_id=_id(request.project_id),
            user_id=_id(request.user_id),
            role=request.role,
        )
        return member_out(await handle(cmd, self.deps))

    async def RemoveProjectMember(
        self, request: identity_pb2.RemoveProjectMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ProjectMember:
        cmd = commands.RemoveProjectMember(
            caller=await self._caller(context),
            project_id=_id(request.project_id),
            user_id=_id(request.user_id),
        )
        return member_out(await handle(cmd, self.deps))

    async def ResolveProject(
        self, request: identity_pb2.ResolveProjectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Project:
        cmd = commands.ResolveProject(api_key=request.api_key, project_id=_id(request.project_id))
        return project_out(await handle(cmd, self.deps))
