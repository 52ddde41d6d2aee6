"""The IdentityService servicer: wire messages to commands and results back. No business branching here.

Identity is the authenticator, so its tenant calls resolve the caller's key by handling an
``Authenticate`` command in-process rather than through ``shared.grpc.Authenticator`` (a gRPC call to
itself), and hold it to the method's scope from the same table (``shared.scopes``)."""

from __future__ import annotations

from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc

from shared import scopes
from shared.errors import NotFound, Unauthenticated
from shared.grpc import bearer, current_method, grpc_service
from shared.wire import ts

from ..domain.members import Invite, Member
from ..domain.model import ApiKey, Organization, Principal
from ..domain.operator import NamedOperator, OperatorPrincipal
from ..service_layer import commands
from ..service_layer.handlers import (
    AcceptedInvite,
    CreatedInvite,
    CreatedOperator,
    CreatedOrganization,
    Dependencies,
    IssuedKey,
    handle,
)


def _principal(p: Principal) -> common_pb2.Principal:
    return common_pb2.Principal(
        organization_id=str(p.organization_id),
        user_id=str(p.user_id),
        role=p.role.value,
        api_key_id=str(p.api_key_id),
        scopes=list(p.scopes),
        project_id=str(p.project_id) if p.project_id else "",
        project_roles=[common_pb2.ProjectRole(project_id=str(i), role=r.value) for i, r in p.project_roles],
    )


def _organization(org: Organization) -> identity_pb2.Organization:
    return identity_pb2.Organization(id=str(org.id), name=org.name, created_at=ts(org.created_at))


def _api_key(key: ApiKey) -> identity_pb2.ApiKey:
    return identity_pb2.ApiKey(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=ts(key.created_at),
        expires_at=ts(key.expires_at),
        last_used_at=ts(key.last_used),
        revoked_at=ts(key.revoked_at),
        user_id=str(key.user_id),
        project_id=str(key.project_id) if key.project_id else "",
    )


def _issued(issued: IssuedKey) -> identity_pb2.CreatedApiKey:
    return identity_pb2.CreatedApiKey(key=_api_key(issued.key), secret=issued.secret)


def _invite(invite: Invite) -> identity_pb2.Invite:
    return identity_pb2.Invite(
        id=str(invite.id),
        kind=invite.kind.value,
        email=invite.email or "",
        role=invite.role.value,
        prefix=invite.prefix,
        max_uses=invite.max_uses,
        uses=invite.uses,
        expires_at=ts(invite.expires_at),
        revoked_at=ts(invite.revoked_at),
        created_at=ts(invite.created_at),
        created_by_user_id=str(invite.created_by_user_id) if invite.created_by_user_id else "",
    )


def _member(m: Member) -> identity_pb2.Member:
    return identity_pb2.Member(
        user_id=str(m.user_id), email=m.email, name=m.name or "", role=m.role.value, joined_at=ts(m.joined_at)
    )


def _operator(o: NamedOperator) -> identity_pb2.Operator:
    return identity_pb2.Operator(
        id=str(o.id),
        name=o.name,
        prefix=o.prefix,
        created_by=o.created_by,
        created_at=ts(o.created_at),
        revoked_at=ts(o.revoked_at),
        revoked_by=o.revoked_by or "",
    )


def optional_id(value: str, field: str) -> UUID | None:
    """An id the request may leave empty (None); a malformed one is NOT_FOUND, like an unknown one."""
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(f"{field.removesuffix('_id')} not found", field=field) from None


def _key_id(value: str) -> UUID | None:
    """A malformed id is treated as unknown: NOT_FOUND, like another organization's id."""
    try:
        return UUID(value)
    except ValueError:
        return None


async def key_caller(deps: Dependencies, context: grpc.aio.ServicerContext) -> Principal:
    """The API key's principal, held to the scope of the method being served (every identity servicer)."""
    key = bearer(context)
    if not key:
        raise Unauthenticated("missing API key (authorization: Bearer <key>)")
    principal: Principal = await handle(commands.Authenticate(key), deps)
    scopes.require(principal.scopes, current_method())
    return principal


@grpc_service
class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        return await key_caller(self.deps, context)

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Principal:
        found = await handle(commands.Authenticate(request.api_key, operator_allowed=True), self.deps)
        if isinstance(found, OperatorPrincipal):
            return common_pb2.Principal(operator=True, operator_name=found.name)
        return _principal(found)

    async def AuthenticateKeys(
        self, request: identity_pb2.AuthenticateKeysRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.AuthenticateKeysResponse:
        cmd = commands.AuthenticateKeys(tuple((k.api_key, k.used) for k in request.keys))
        found: list[Principal | None] = await handle(cmd, self.deps)
        return identity_pb2.AuthenticateKeysResponse(
            keys=[
                identity_pb2.KeyVerification(valid=True, principal=_principal(p))
                if p is not None
                else identity_pb2.KeyVerification()
                for p in found
            ]
        )

    async def CreateOrganization(
        self, request: identity_pb2.CreateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateOrganizationResponse:
        cmd = commands.CreateOrganization(
            name=request.name,
            owner_email=request.owner_email,
            owner_name=request.owner_name,
            operator_token=bearer(context),
        )
        done: CreatedOrganization = await handle(cmd, self.deps)
        return identity_pb2.CreateOrganizationResponse(
            organization=_organization(done.organization),
            owner=identity_pb2.User(
                id=str(done.owner.id), email=done.owner.email, name=done.owner.name or ""
            ),
            api_key=_issued(done.api_key),
        )

    async def GetOrganization(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Organization:
        cmd = commands.GetOrganization(caller=await self._caller(context))
        return _organization(await handle(cmd, self.deps))

    async def CreateApiKey(
        self, request: identity_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatedApiKey:
        cmd = commands.CreateApiKey(
            caller=await self._caller(context),
            name=request.name,
            scopes=tuple(request.scopes),
            expires_in_seconds=request.expires_in_seconds,
            project_id=optional_id(request.project_id, "project_id"),
        )
        return _issued(await handle(cmd, self.deps))

    async def ListApiKeys(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListApiKeysResponse:
        keys: list[ApiKey] = await handle(commands.ListApiKeys(caller=await self._caller(context)), self.deps)
        return identity_pb2.ListApiKeysResponse(keys=[_api_key(k) for k in keys])

    async def RevokeApiKey(
        self, request: identity_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ApiKey:
        cmd = commands.RevokeApiKey(caller=await self._caller(context), key_id=_key_id(request.id))
        return _api_key(await handle(cmd, self.deps))

    # -- members and invites
    async def CreateInvite(
        self, request: identity_pb2.CreateInviteRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatedInvite:
        cmd = commands.CreateInvite(
            caller=await self._caller(context),
            email=request.email,
            role=request.role,
            expires_in_seconds=request.expires_in_seconds,
            max_uses=request.max_uses,
        )
        done: CreatedInvite = await handle(cmd, self.deps)
        return identity_pb2.CreatedInvite(
            invite=_invite(done.issued.invite), token=done.issued.token, mailed=done.mailed
        )

    async def ListInvites(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListInvitesResponse:
        found: list[Invite] = await handle(
            commands.ListInvites(caller=await self._caller(context)), self.deps
        )
        return identity_pb2.ListInvitesResponse(invites=[_invite(i) for i in found])

    async def RevokeInvite(
        self, request: identity_pb2.RevokeInviteRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Invite:
        cmd = commands.RevokeInvite(caller=await self._caller(context), invite_id=_key_id(request.id))
        return _invite(await handle(cmd, self.deps))

    async def AcceptInvite(
        self, request: identity_pb2.AcceptInviteRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.AcceptedInvite:
        cmd = commands.AcceptInvite(token=request.token, email=request.email, name=request.name)
        done: AcceptedInvite = await handle(cmd, self.deps)
        return identity_pb2.AcceptedInvite(
            organization=_organization(done.organization),
            member=_member(done.member),
            api_key=_issued(done.api_key),
        )

    async def ListMembers(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListMembersResponse:
        found: list[Member] = await handle(
            commands.ListMembers(caller=await self._caller(context)), self.deps
        )
        return identity_pb2.ListMembersResponse(members=[_member(m) for m in found])

    async def UpdateMember(
        self, request: identity_pb2.UpdateMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Member:
        cmd = commands.UpdateMember(
            caller=await self._caller(context), user_id=_key_id(request.user_id), role=request.role
        )
        return _member(await handle(cmd, self.deps))

    async def RemoveMember(
        self, request: identity_pb2.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Member:
        cmd = commands.RemoveMember(caller=await self._caller(context), user_id=_key_id(request.user_id))
        return _member(await handle(cmd, self.deps))

    # -- named operators (operator token in metadata)
    async def CreateOperator(
        self, request: identity_pb2.CreateOperatorRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatedOperator:
        cmd = commands.CreateOperator(name=request.name, operator_token=bearer(context))
        done: CreatedOperator = await handle(cmd, self.deps)
        return identity_pb2.CreatedOperator(operator=_operator(done.operator), token=done.token)

    async def ListOperators(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListOperatorsResponse:
        found: list[NamedOperator] = await handle(
            commands.ListOperators(operator_token=bearer(context)), self.deps
        )
        return identity_pb2.ListOperatorsResponse(operators=[_operator(o) for o in found])

    async def RevokeOperator(
        self, request: identity_pb2.RevokeOperatorRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Operator:
        cmd = commands.RevokeOperator(operator_id=_key_id(request.id), operator_token=bearer(context))
        return _operator(await handle(cmd, self.deps))
