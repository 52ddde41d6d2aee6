"""Bodies of the project routes (routes/projects.py; docs/projects.md). Requests are strict like every other
body; their bounds are identity's own (``shared.contracts.limits``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from gpufleet.v1 import identity_pb2
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.contracts import limits
from shared.wire import opt, parse_ts


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _no_control(value: str) -> str:
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _project_role(value: str) -> str:
    if value not in limits.PROJECT_ROLES:
        raise ValueError(f"must be one of: {', '.join(limits.PROJECT_ROLES)}")
    return value


ProjectName = Annotated[
    str,
    Field(min_length=1, max_length=limits.MAX_PROJECT_NAME, examples=["Fraud detection"]),
    AfterValidator(_no_control),
]
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_PROJECT_SLUG,
        pattern=limits.PROJECT_SLUG_PATTERN,
        examples=["fraud-detection"],
    ),
]
Description = Annotated[str, Field(max_length=limits.MAX_PROJECT_DESCRIPTION), AfterValidator(_no_control)]
ProjectRoleName = Annotated[
    str,
    Field(json_schema_extra={"enum": list(limits.PROJECT_ROLES)}, examples=["contributor"]),
    AfterValidator(_project_role),
]


# ----------------------------------------------------------------------------- requests


class ProjectCreate(_StrictBody):
    name: ProjectName
    slug: Slug | None = Field(
        default=None,
        description="Unique in the organization (archived projects keep theirs); absent: from the name.",
    )
    description: Description | None = None


class ProjectUpdate(_StrictBody):
    """Fields left out are kept."""

    name: ProjectName | None = None
    slug: Slug | None = None
    description: Description | None = None


class ProjectMemberSet(_StrictBody):
    role: ProjectRoleName = Field(description="The user's role in the project.")


# ----------------------------------------------------------------------------- responses


class ProjectOut(BaseModel):
    id: str
    name: str
    slug: str
    description: str
    created_by_user_id: str | None
    created_at: datetime | None
    updated_at: datetime | None
    archived_at: datetime | None = Field(description="When it was archived (DELETE); null: active.")


class ProjectListOut(BaseModel):
    projects: list[ProjectOut]


class ProjectMemberOut(BaseModel):
    project_id: str
    user_id: str
    email: str
    name: str | None
    role: str = Field(examples=["contributor"], description="owner | contributor | viewer")
    added_by_user_id: str | None
    added_at: datetime | None
    updated_at: datetime | None


class ProjectMemberListOut(BaseModel):
    members: list[ProjectMemberOut]


def project_out(p: identity_pb2.Project) -> ProjectOut:
    return ProjectOut(
        id=p.id,
        name=p.name,
        slug=p.slug,
        description=p.description,
        created_by_user_id=opt(p.created_by_user_id),
        created_at=parse_ts(p.created_at),
        updated_at=parse_ts(p.updated_at),
        archived_at=parse_ts(p.archived_at),
    )


def project_member_out(m: identity_pb2.ProjectMember) -> ProjectMemberOut:
    return ProjectMemberOut(
        project_id=m.project_id,
        user_id=m.user_id,
        email=m.email,
        name=opt(m.name),
        role=m.role,
        added_by_user_id=opt(m.added_by_user_id),
        added_at=parse_ts(m.added_at),
        updated_at=parse_ts(m.updated_at),
    )
