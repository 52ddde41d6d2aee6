"""The IdentityService servicer: wire messages to commands and results back. No business branching here.

Identity is the authenticator, so its tenant calls resolve the caller's key by handling an
``Authenticate`` command in-process rather than through ``shared.grpc.Authenticator`` (a gRPC call to
itself), and hold it to the method's scope from the same table (``shared.scopes``)."""

from __future__ import annotations

from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc

from shared import scopes
from shared.errors import Unauthenticated
from shared.grpc import bearer, current_method, grpc_service
from shared.wire import ts

from ..domain.model import ApiKey, Organization, Principal
from ..domain.operator import OperatorPrincipal
from ..service_layer import commands
from ..service_layer.handlers import CreatedOrganization, Dependencies, IssuedKey, handle


def _principal(p: Principal) -> common_pb2.Principal:
    return common_pb2.Principal(
        organization_id=str(p.organization_id),
        user_id=str(p.user_id),
        role=p.role.value,
        api_key_id=str(p.api_key_id),
        scopes=list(p.scopes),
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
    )


def _issued(issued: IssuedKey) -> identity_pb2.CreatedApiKey:
    return identity_pb2.CreatedApiKey(key=_api_key(issued.key), secret=issued.secret)


def _key_id(value: str) -> UUID | None:
    """A malformed id is treated as unknown: NOT_FOUND, like another organization's id."""
    try:
        return UUID(value)
    except ValueError:
        return None


@grpc_service
class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        key = bearer(context)
        if not key:
            raise Unauthenticated("missing API key (authorization: Bearer <key>)")
        principal: Principal = await handle(commands.Authenticate(key), self.deps)
        scopes.require(principal.scopes, current_method())
        return principal

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Principal:
        found = await handle(commands.Authenticate(request.api_key, operator_allowed=True), self.deps)
        if isinstance(found, OperatorPrincipal):
            return common_pb2.Principal(operator=True)
        return _principal(found)

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
