"""Bodies of the member, invite and operator routes (routes/members.py). Requests are strict like every
other body (entrypoints/requests.py); their bounds are identity's own (``shared.contracts.limits``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from gpufleet.v1 import identity_pb2
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.gateway.entrypoints import translate
from services.gateway.entrypoints.responses import CreatedApiKeyOut, OrganizationOut
from shared.contracts import limits
from shared.wire import parse_ts


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _role(value: str) -> str:
    if value not in limits.MEMBER_ROLES:
        raise ValueError(f"must be one of: {', '.join(limits.MEMBER_ROLES)}")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


RoleName = Annotated[
    str,
    Field(json_schema_extra={"enum": list(limits.MEMBER_ROLES)}, examples=["member"]),
    AfterValidator(_role),
]
Email = Annotated[
    str,
    Field(min_length=3, max_length=limits.MAX_EMAIL, examples=["vera@example.com"]),
    AfterValidator(_no_nul),
]
PersonName = Annotated[str, Field(max_length=limits.MAX_PERSON_NAME), AfterValidator(_no_nul)]


# ----------------------------------------------------------------------------- requests


class InviteCreate(_StrictBody):
    """With ``email``: an invite for that address, which works once. Without: an invite code that works
    for up to ``max_uses`` people (each gives their email when accepting)."""

    email: Email | None = Field(default=None, description="Who is invited; absent: an invite code.")
    role: RoleName = Field(
        default="member", description="The role the invitee gets (only an owner invites owners)."
    )
    expires_in_seconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.INVITE_MAX_LIFETIME_SECONDS,
        description=f"Absent: {limits.INVITE_DEFAULT_LIFETIME_SECONDS // 86400} days.",
    )
    max_uses: int | None = Field(
        default=None, ge=1, le=limits.INVITE_CODE_MAX_USES, description="Invite codes only; absent: 1."
    )


class InviteAccept(_StrictBody):
    """The invite's token goes in ``Authorization: Bearer <token>``, like every other credential."""

    email: Email | None = Field(
        default=None, description="Required for an invite code; an email invite's own address otherwise."
    )
    name: PersonName | None = None


class MemberUpdate(_StrictBody):
    role: RoleName


class OperatorCreate(_StrictBody):
    name: Annotated[
        str, Field(pattern=limits.OPERATOR_NAME_PATTERN, examples=["ops-alice"], description='Not "admin".')
    ]


# ----------------------------------------------------------------------------- responses


class InviteOut(BaseModel):
    id: str
    kind: Literal["email", "code"]
    email: str | None
    role: str = Field(examples=["member"])
    prefix: str = Field(description="The token's first characters, to tell invites apart.")
    max_uses: int
    uses: int
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime | None
    created_by_user_id: str | None


class CreatedInviteOut(InviteOut):
    token: str = Field(description="The invite's token, shown once (only its hash is kept): pass it on.")
    mailed: bool = Field(description="Whether identity handed it to its SMTP server for the address.")


class InviteListOut(BaseModel):
    invites: list[InviteOut]


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str | None
    role: str = Field(examples=["viewer"], description="owner | admin | member | viewer")
    joined_at: datetime | None


class MemberListOut(BaseModel):
    members: list[MemberOut]


class AcceptedInviteOut(BaseModel):
    organization: OrganizationOut
    member: MemberOut
    api_key: CreatedApiKeyOut = Field(description="The new member's first key; its secret is shown once.")


class OperatorOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_by: str
    created_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class CreatedOperatorOut(OperatorOut):
    token: str = Field(description="The operator's token, shown once (only its hash is kept).")


class OperatorListOut(BaseModel):
    operators: list[OperatorOut]


# ----------------------------------------------------------------------------- translation


def _at(value: str, name: str) -> datetime | None:
    return parse_ts(value, name) if value else None


def invite_out(i: identity_pb2.Invite) -> InviteOut:
    return InviteOut(**_invite_fields(i))


def _invite_fields(i: identity_pb2.Invite) -> dict:
    return {
        "id": i.id,
        "kind": i.kind,
        "email": i.email or None,
        "role": i.role,
        "prefix": i.prefix,
        "max_uses": i.max_uses,
        "uses": i.uses,
        "expires_at": _at(i.expires_at, "expires_at"),
        "revoked_at": _at(i.revoked_at, "revoked_at"),
        "created_at": _at(i.created_at, "created_at"),
        "created_by_user_id": i.created_by_user_id or None,
    }


def created_invite_out(c: identity_pb2.CreatedInvite) -> CreatedInviteOut:
    return CreatedInviteOut(**_invite_fields(c.invite), token=c.token, mailed=c.mailed)


def member_out(m: identity_pb2.Member) -> MemberOut:
    return MemberOut(
        user_id=m.user_id,
        email=m.email,
        name=m.name or None,
        role=m.role,
        joined_at=_at(m.joined_at, "joined_at"),
    )


def accepted_out(a: identity_pb2.AcceptedInvite) -> AcceptedInviteOut:
    return AcceptedInviteOut(
        organization=translate.organization(a.organization),
        member=member_out(a.member),
        api_key=translate.created_api_key(a.api_key),
    )


def _operator_fields(o: identity_pb2.Operator) -> dict:
    return {
        "id": o.id,
        "name": o.name,
        "prefix": o.prefix,
        "created_by": o.created_by,
        "created_at": _at(o.created_at, "created_at"),
        "revoked_at": _at(o.revoked_at, "revoked_at"),
        "revoked_by": o.revoked_by or None,
    }


def operator_out(o: identity_pb2.Operator) -> OperatorOut:
    return OperatorOut(**_operator_fields(o))


def created_operator_out(c: identity_pb2.CreatedOperator) -> CreatedOperatorOut:
    return CreatedOperatorOut(**_operator_fields(c.operator), token=c.token)
