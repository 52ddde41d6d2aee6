"""The IdentityService servicer: wire messages to commands and results back. No business branching here.

Identity is the authenticator, so its tenant calls resolve the caller's key by calling the
``authenticate`` handler in-process rather than through ``shared.grpc.Authenticator`` (a gRPC call to
itself)."""

from __future__ import annotations

import hmac
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, identity_pb2, identity_pb2_grpc

from shared.errors import Unauthenticated
from shared.grpc import bearer, grpc_service
from shared.wire import ts

from ..bootstrap import IdentityApp
from ..domain.model import ApiKey, Organization, Principal
from ..service_layer import commands, handlers


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


def _issued(issued: handlers.IssuedKey) -> identity_pb2.CreatedApiKey:
    return identity_pb2.CreatedApiKey(key=_api_key(issued.key), secret=issued.secret)


def _key_id(value: str) -> UUID | None:
    """A malformed id is treated as unknown: NOT_FOUND, like another organization's id."""
    try:
        return UUID(value)
    except ValueError:
        return None


@grpc_service
class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, app: IdentityApp) -> None:
        self.app = app

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        key = bearer(context)
        if not key:
            raise Unauthenticated("missing API key (authorization: Bearer <key>)")
        return await handlers.authenticate(commands.Authenticate(key), self.app.uow)

    def _require_operator(self, context: grpc.aio.ServicerContext) -> None:
        token = bearer(context)
        if not token or not hmac.compare_digest(token.encode(), self.app.admin_token.encode()):
            raise Unauthenticated("a valid admin token is required")

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Principal:
        return _principal(await handlers.authenticate(commands.Authenticate(request.api_key), self.app.uow))

    async def CreateOrganization(
        self, request: identity_pb2.CreateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateOrganizationResponse:
        self._require_operator(context)
        cmd = commands.CreateOrganization(
            name=request.name, owner_email=request.owner_email, owner_name=request.owner_name
        )
        done = await handlers.create_organization(cmd, self.app.uow)
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
        return _organization(await handlers.get_organization(await self._caller(context), self.app.uow))

    async def CreateApiKey(
        self, request: identity_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatedApiKey:
        cmd = commands.CreateApiKey(
            caller=await self._caller(context),
            name=request.name,
            scopes=tuple(request.scopes),
            expires_in_seconds=request.expires_in_seconds,
        )
        return _issued(await handlers.create_api_key(cmd, self.app.uow))

    async def ListApiKeys(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListApiKeysResponse:
        keys = await handlers.list_api_keys(await self._caller(context), self.app.uow)
        return identity_pb2.ListApiKeysResponse(keys=[_api_key(k) for k in keys])

    async def RevokeApiKey(
        self, request: identity_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ApiKey:
        cmd = commands.RevokeApiKey(caller=await self._caller(context), key_id=_key_id(request.id))
        return _api_key(await handlers.revoke_api_key(cmd, self.app.uow))
