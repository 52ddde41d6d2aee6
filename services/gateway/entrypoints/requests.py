"""Request bodies. Strict: no ``"2"`` -> ``2`` coercion, and unknown fields are refused.

Every bound, enumeration and the URL shape come from ``shared.contracts.limits`` and ``shared.urls``,
the same definitions the owning services check, so the OpenAPI document states what is enforced and a
body valid here is never refused downstream for its shape. Whether a GPU type exists or a webhook
target is allowed stays the owning service's rule, answered as INVALID_ARGUMENT with the field, which
the gateway renders as 422 like its own checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from shared.contracts import limits
from shared.errors import InvalidArgument
from shared.urls import check_http_url


def _http_url(value: str, info: ValidationInfo) -> str:
    # Checked by the one URL rule, but forwarded exactly as given (pydantic's Url would normalise it).
    try:
        check_http_url(value, info.field_name or "url")
    except InvalidArgument as exc:
        raise ValueError(exc.message) from exc
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _one_of(allowed: Sequence[str]) -> Callable[[str], str]:
    # An exact check stated as an ``enum`` in the schema (a ``Literal`` would spell the values out here
    # a second time).
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return value

    return check


HttpUrlText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_URL,
        json_schema_extra={"format": "uri"},
        examples=["https://example.com/hook"],
    ),
    AfterValidator(_http_url),
]
Text = Annotated[str, AfterValidator(_no_nul)]
WebhookEventName = Annotated[
    str,
    Field(json_schema_extra={"enum": list(limits.WEBHOOK_EVENT_NAMES)}, examples=["job.succeeded"]),
    AfterValidator(_one_of(limits.WEBHOOK_EVENT_NAMES)),
]
KeyScope = Annotated[
    str,
    Field(json_schema_extra={"enum": list(limits.KEY_SCOPES)}, examples=["jobs:write"]),
    AfterValidator(_one_of(limits.KEY_SCOPES)),
]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JobCreate(_StrictBody):
    command: Annotated[
        Text,
        Field(min_length=1, max_length=limits.MAX_COMMAND, examples=["python train.py --epochs 3"]),
        AfterValidator(_not_blank),
    ]
    gpu_count: int = Field(default=limits.MIN_GPUS, ge=limits.MIN_GPUS, le=limits.MAX_GPUS)
    gpu_memory_mb: int = Field(
        default=0, ge=0, le=limits.MAX_GPU_MEMORY_MB, description="Memory needed on each GPU; 0 = any."
    )
    gpu_type: (
        Annotated[Text, Field(min_length=1, max_length=limits.MAX_GPU_TYPE, examples=["h100-80gb"])] | None
    ) = Field(default=None, description="A catalog name from GET /v1/gpu-types; absent = any type.")
    priority: int = Field(
        default=limits.DEFAULT_PRIORITY,
        ge=limits.MIN_PRIORITY,
        le=limits.MAX_PRIORITY,
        description="Higher runs first.",
    )
    webhook_url: HttpUrlText | None = Field(default=None, description="Receives this job's lifecycle events.")
    name: Annotated[Text, Field(max_length=limits.MAX_JOB_NAME)] | None = None
    nodes: int = Field(
        default=limits.MIN_NODES,
        ge=limits.MIN_NODES,
        le=limits.MAX_NODES,
        description="A gang across this many nodes, gpu_count GPUs on each, started all-or-nothing.",
    )
    cpu_cores: int = Field(
        default=0, ge=0, le=limits.MAX_CPU_CORES, description="CPU cores needed on each node; 0 = no request."
    )
    ram_mb: int = Field(
        default=0, ge=0, le=limits.MAX_RAM_MB, description="RAM needed on each node; 0 = no request."
    )
    time_limit_seconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_TIME_LIMIT_SECONDS,
        description="The job is ended (timed_out) when it runs longer; absent = the platform's default. "
        "Above the platform's maximum is refused.",
    )
    hold: bool = Field(default=False, description="Queue the job held: not scheduled until released.")
    no_requeue: bool = Field(
        default=False,
        description="Fail instead of being requeued as a new attempt when the job's node or agent is lost.",
    )
    # strict=False: the body is strict, but a UUID arrives as a JSON string.
    project_id: Annotated[UUID, Field(strict=False)] | None = Field(
        default=None,
        description="The project the job belongs to (docs/projects.md); absent = none, or a project-bound "
        "key's own project. Needs the owner or contributor role in it (organization owners and admins hold "
        "every project). Unknown or another organization's: 404; archived: 422 project-archived.",
    )
    image: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=limits.MAX_IMAGE,
                pattern=limits.IMAGE_PATTERN,
                examples=["nvcr.io/nvidia/pytorch:24.01-py3"],
            ),
        ]
        | None
    ) = Field(
        default=None,
        description="A container image to run the command in ([registry[:port]/]path[:tag][@sha256:digest]); "
        "absent = the agent's host sandbox. An agent without a container runtime fails the job.",
    )


class JobBatchCreate(_StrictBody):
    jobs: list[JobCreate] = Field(
        min_length=1,
        max_length=limits.MAX_BATCH_SUBMIT,
        description="The jobs, each the body of POST /v1/jobs; all are created or none is.",
    )


class JobPriorityUpdate(_StrictBody):
    priority: int = Field(
        ge=limits.MIN_PRIORITY,
        le=limits.MAX_PRIORITY,
        description="Orders the job among its own organization's queued jobs only; higher runs first.",
    )


class JobCancel(_StrictBody):
    reason: Annotated[Text, Field(max_length=limits.MAX_CANCEL_REASON)] | None = None


class WebhookCreate(_StrictBody):
    url: HttpUrlText
    events: list[WebhookEventName] = Field(
        default_factory=list,
        max_length=limits.MAX_WEBHOOK_EVENTS,
        description="Event types to deliver; empty = every job event.",
    )
    description: Annotated[Text, Field(max_length=limits.MAX_DESCRIPTION)] | None = None


class ApiKeyCreate(_StrictBody):
    name: Annotated[Text, Field(min_length=1, max_length=limits.MAX_KEY_NAME)]
    scopes: list[KeyScope] = Field(default_factory=list, max_length=limits.MAX_KEY_SCOPES)
    expires_in_seconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_KEY_LIFETIME_SECONDS,
        description="Absent: the key never expires.",
    )
    project_id: UUID | None = Field(
        default=None,
        strict=False,  # a JSON string in canonical UUID form (strict mode would want a UUID object)
        description="Bind the key to this project (docs/projects.md): it then reads only that project's "
        "jobs, costs and events, and submits into it. Needs an organization owner or admin, or the "
        "project's owner or contributor; a project-bound caller's keys are bound to its own project. "
        "Unknown or another organization's: 404; archived: 422 project-archived.",
    )
