"""Bodies of ``/v1/organization/project-policy`` (routes/admin.py): an organization admin's per-project
fair-share weights and caps (docs/projects.md), as the scheduler's PolicyService keeps them."""

from __future__ import annotations

from typing import Any

from gpufleet.v1 import policy_pb2
from pydantic import BaseModel, Field

from services.gateway.entrypoints.responses_admin import Count, Weight, _StrictBody
from shared.contracts import limits


class ProjectPolicyIn(_StrictBody):
    project_id: str = Field(description="A project of the organization.", min_length=1, max_length=36)
    weight: Weight | None = Field(
        default=None, description="Its fair-share weight among the organization's projects (null: 1)."
    )
    max_running_jobs: Count | None = Field(
        default=None, description="Its jobs on nodes at once (null: no cap)."
    )
    max_gpus: Count | None = Field(default=None, description="GPUs its jobs hold at once (null: no cap).")


class ProjectPoliciesUpdate(_StrictBody):
    policies: list[ProjectPolicyIn] = Field(
        description="Replaces the organization's project policies (an empty list removes them).",
        max_length=limits.POLICY_MAX_USER_CAPS,
    )


class ProjectPolicyOut(BaseModel):
    project_id: str
    weight: float | None = Field(description="null: 1")
    max_running_jobs: int | None = Field(description="null: no cap")
    max_gpus: int | None = Field(description="null: no cap")


class ProjectPoliciesOut(BaseModel):
    organization_id: str
    policies: list[ProjectPolicyOut]


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def project_policies_out(p: policy_pb2.ProjectPolicies) -> ProjectPoliciesOut:
    return ProjectPoliciesOut(
        organization_id=p.organization_id,
        policies=[
            ProjectPolicyOut(
                project_id=e.project_id,
                weight=_opt(e, "weight"),
                max_running_jobs=_opt(e, "max_running_jobs"),
                max_gpus=_opt(e, "max_gpus"),
            )
            for e in p.policies
        ],
    )


def project_policies_in(body: ProjectPoliciesUpdate) -> policy_pb2.SetProjectPoliciesRequest:
    return policy_pb2.SetProjectPoliciesRequest(
        policies=[
            policy_pb2.ProjectPolicy(
                project_id=e.project_id,
                weight=e.weight,
                max_running_jobs=e.max_running_jobs,
                max_gpus=e.max_gpus,
            )
            for e in body.policies
        ]
    )
