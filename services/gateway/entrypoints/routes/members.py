"""People (identity; docs/members.md): an organization's members and invites, and the named operators.

* ``/v1/invites``, ``/v1/members``: with an API key, for the key's own organization. Owners and admins
  invite, revoke invites, change roles and remove members (``members:write``); any member lists members
  (``members:read``). ``POST /v1/invites/accept`` takes no API key: the invite's token is the credential
  (``Authorization: Bearer gpi_…``), and the answer holds the new member's first API key.
* ``/v1/admin/operators``: the operators' own calls, with an operator token (the bootstrap
  ``GPUFLEET_ADMIN_TOKEN`` or a named operator's), forwarded to identity, which judges it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from gpufleet.v1 import common_pb2, identity_pb2

from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.responses_members import (
    AcceptedInviteOut,
    CreatedInviteOut,
    CreatedOperatorOut,
    InviteAccept,
    InviteCreate,
    InviteListOut,
    MemberListOut,
    MemberOut,
    MemberUpdate,
    OperatorCreate,
    OperatorListOut,
    accepted_out,
    created_invite_out,
    created_operator_out,
    invite_out,
    member_out,
    operator_out,
)
from services.gateway.entrypoints.routes import problem_responses
from services.gateway.entrypoints.routes.admin import OperatorDep
from shared.errors import Unauthenticated

router = APIRouter(tags=["members"])

invite_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="InviteToken",
    description="`Authorization: Bearer <invite token>` (gpi_… or gpc_…), only to accept the invite.",
)

# ----------------------------------------------------------------------------- invites


@router.post(
    "/v1/invites",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedInviteOut,
    responses=problem_responses(409, 422),
    summary="Invite someone by email, or make an invite code (its token is shown once)",
)
async def create_invite(body: InviteCreate, caller: CallerDep, down: DownstreamDep) -> CreatedInviteOut:
    created = await down.identity.CreateInvite(
        identity_pb2.CreateInviteRequest(
            email=body.email or "",
            role=body.role,
            expires_in_seconds=body.expires_in_seconds or 0,
            max_uses=body.max_uses or 0,
        ),
        **caller.call,
    )
    return created_invite_out(created)


@router.get(
    "/v1/invites", response_model=InviteListOut, responses=problem_responses(), summary="List invites"
)
async def list_invites(caller: CallerDep, down: DownstreamDep) -> InviteListOut:
    reply = await down.identity.ListInvites(common_pb2.Empty(), **caller.call)
    return InviteListOut(invites=[invite_out(i) for i in reply.invites])


@router.delete(
    "/v1/invites/{invite_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
    summary="Revoke an invite",
)
async def revoke_invite(invite_id: str, caller: CallerDep, down: DownstreamDep) -> Response:
    await down.identity.RevokeInvite(
        identity_pb2.RevokeInviteRequest(id=resource_id(invite_id)), **caller.call
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/invites/accept",
    status_code=status.HTTP_201_CREATED,
    response_model=AcceptedInviteOut,
    responses=problem_responses(409, 422),
    summary="Accept an invite (no API key: the invite's token is the credential); returns your first API key",
)
async def accept_invite(
    request: Request,
    down: DownstreamDep,
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(invite_scheme)],
    body: InviteAccept | None = None,
) -> AcceptedInviteOut:
    if token is None or not token.credentials:
        raise Unauthenticated("the invite token is required (Authorization: Bearer <token>)")
    body = body or InviteAccept()
    request_id = str(request.scope.get("state", {}).get("request_id", ""))
    accepted = await down.identity.AcceptInvite(
        identity_pb2.AcceptInviteRequest(
            token=token.credentials, email=body.email or "", name=body.name or ""
        ),
        metadata=(("x-request-id", request_id),),
        timeout=down.call_timeout,
    )
    return accepted_out(accepted)


# ----------------------------------------------------------------------------- members


@router.get(
    "/v1/members", response_model=MemberListOut, responses=problem_responses(), summary="List members"
)
async def list_members(caller: CallerDep, down: DownstreamDep) -> MemberListOut:
    reply = await down.identity.ListMembers(common_pb2.Empty(), **caller.call)
    return MemberListOut(members=[member_out(m) for m in reply.members])


@router.patch(
    "/v1/members/{user_id}",
    response_model=MemberOut,
    responses=problem_responses(404, 409, 422),
    summary="Change a member's role",
)
async def update_member(
    user_id: str, body: MemberUpdate, caller: CallerDep, down: DownstreamDep
) -> MemberOut:
    member = await down.identity.UpdateMember(
        identity_pb2.UpdateMemberRequest(user_id=resource_id(user_id), role=body.role), **caller.call
    )
    return member_out(member)


@router.delete(
    "/v1/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 409),
    summary="Remove a member (revokes every key they hold here)",
)
async def remove_member(user_id: str, caller: CallerDep, down: DownstreamDep) -> Response:
    await down.identity.RemoveMember(
        identity_pb2.RemoveMemberRequest(user_id=resource_id(user_id)), **caller.call
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------- named operators


@router.post(
    "/v1/admin/operators",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedOperatorOut,
    responses=problem_responses(409, 422),
    summary="Create a named operator (its token is shown once) (operator)",
    tags=["operators"],
)
async def create_operator(body: OperatorCreate, op: OperatorDep, down: DownstreamDep) -> CreatedOperatorOut:
    created = await down.identity.CreateOperator(
        identity_pb2.CreateOperatorRequest(name=body.name), **op.call
    )
    return created_operator_out(created)


@router.get(
    "/v1/admin/operators",
    response_model=OperatorListOut,
    responses=problem_responses(),
    summary="List named operators (operator)",
    tags=["operators"],
)
async def list_operators(op: OperatorDep, down: DownstreamDep) -> OperatorListOut:
    reply = await down.identity.ListOperators(common_pb2.Empty(), **op.call)
    return OperatorListOut(operators=[operator_out(o) for o in reply.operators])


@router.delete(
    "/v1/admin/operators/{operator_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
    summary="Revoke a named operator's token (operator)",
    tags=["operators"],
)
async def revoke_operator(operator_id: str, op: OperatorDep, down: DownstreamDep) -> Response:
    await down.identity.RevokeOperator(
        identity_pb2.RevokeOperatorRequest(id=resource_id(operator_id)), **op.call
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
