"""/v1/me and /v1/api-keys (identity)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from gpufleet.v1 import common_pb2, identity_pb2

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.requests import ApiKeyCreate
from services.gateway.entrypoints.responses import ApiKeyListOut, CreatedApiKeyOut, MeOut
from services.gateway.entrypoints.routes import problem_responses

router = APIRouter(prefix="/v1", tags=["identity"])


@router.get("/me", response_model=MeOut, responses=problem_responses(), summary="Who am I")
async def me(caller: CallerDep, down: DownstreamDep) -> MeOut:
    org = await down.identity.GetOrganization(common_pb2.Empty(), **caller.call)
    return MeOut(principal=translate.principal(caller.principal), organization=translate.organization(org))


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKeyOut,
    responses=problem_responses(400, 404, 422),
    summary="Create an API key (its secret is shown once), optionally bound to a project",
)
async def create_api_key(body: ApiKeyCreate, caller: CallerDep, down: DownstreamDep) -> CreatedApiKeyOut:
    created = await down.identity.CreateApiKey(
        identity_pb2.CreateApiKeyRequest(
            name=body.name,
            scopes=body.scopes,
            expires_in_seconds=body.expires_in_seconds or 0,
            project_id=str(body.project_id) if body.project_id else "",
        ),
        **caller.call,
    )
    return translate.created_api_key(created)


@router.get("/api-keys", response_model=ApiKeyListOut, responses=problem_responses(), summary="List API keys")
async def list_api_keys(caller: CallerDep, down: DownstreamDep) -> ApiKeyListOut:
    reply = await down.identity.ListApiKeys(common_pb2.Empty(), **caller.call)
    return ApiKeyListOut(api_keys=[translate.api_key(k) for k in reply.keys])


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
    summary="Revoke an API key",
)
async def revoke_api_key(key_id: str, caller: CallerDep, down: DownstreamDep) -> Response:
    await down.identity.RevokeApiKey(identity_pb2.RevokeApiKeyRequest(id=resource_id(key_id)), **caller.call)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
