"""Response bodies, declared so that the OpenAPI document describes every answer.

Timestamps are RFC 3339 (UTC), absent ones ``null``; money and durations in seconds are decimal strings
(never floats), exactly as the owning service computed them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from services.gateway.domain.readiness import DependencyState, ReadinessStatus
from shared.contracts.fleet import GpuStatus
from shared.contracts.jobs import JobStatus

Decimal = Annotated[str, Field(json_schema_extra={"format": "decimal"}, examples=["2.50"])]


class ProblemFieldError(BaseModel):
    field: str | None = Field(
        description="The offending field (dotted path); null = the request body as a whole."
    )
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (media type ``application/problem+json``)."""

    type: str = Field(examples=["https://gpufleet.dev/problems/validation-error"])
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path that failed.")
    request_id: str | None = Field(default=None, description="Echo of X-Request-ID, for support.")
    errors: list[ProblemFieldError] | None = Field(default=None, description="Validation problems only.")


# ----------------------------------------------------------------------------- identity


class ProjectRoleOut(BaseModel):
    project_id: str
    role: str = Field(examples=["contributor"], description="owner | contributor | viewer")


class PrincipalOut(BaseModel):
    organization_id: str
    user_id: str
    role: str = Field(examples=["owner"], description="owner | admin | member | viewer")
    api_key_id: str
    scopes: list[str]
    project_id: str | None = Field(
        default=None, description="The project this key is bound to (docs/projects.md); null: none."
    )
    project_roles: list[ProjectRoleOut] = Field(
        default_factory=list,
        description="Your roles in the organization's projects; empty for owners and admins, who hold every one.",
    )


class OrganizationOut(BaseModel):
    id: str
    name: str
    created_at: datetime | None


class MeOut(BaseModel):
    principal: PrincipalOut
    organization: OrganizationOut


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    user_id: str | None
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    project_id: str | None = Field(
        default=None, description="The project the key is bound to (docs/projects.md); null: none."
    )


class CreatedApiKeyOut(ApiKeyOut):
    secret: str = Field(description="The full key. Shown once: only its hash is kept.")


class ApiKeyListOut(BaseModel):
    api_keys: list[ApiKeyOut]


# ----------------------------------------------------------------------------- fleet


class GpuOut(BaseModel):
    id: str
    name: str
    gpu_type: str
    node_id: str
    node_name: str
    index: int
    uuid: str
    memory_total_mb: int
    status: GpuStatus
    in_use: bool
    cost_per_hour: Decimal
    provider: str
    is_spot: bool
    dedicated: bool = Field(description="Reserved for the caller's organization.")
    last_active: datetime | None
    job_id: str | None = Field(
        default=None,
        description="The job holding it, only when it is one of the caller's organization's jobs "
        "(a GPU another organization's job holds is `allocated` with no job).",
    )


class GpuListOut(BaseModel):
    gpus: list[GpuOut]


class GpuTypeOut(BaseModel):
    name: str = Field(examples=["h100-80gb"])
    vendor: str
    model: str
    memory_mb: int
    reference_price_per_hour: Decimal


class GpuTypeListOut(BaseModel):
    gpu_types: list[GpuTypeOut]


# ----------------------------------------------------------------------------- jobs


class StatusChangeOut(BaseModel):
    status: JobStatus
    at: datetime | None
    reason: str | None


class PendingReasonOut(BaseModel):
    code: str = Field(
        examples=["no_capacity"],
        description="held, no_capacity, fair_share, quota_exhausted, user_cap, never_fits, ...",
    )
    message: str = Field(description="For people; never names another organization or what it runs.")


class JobPlacementOut(BaseModel):
    node_id: str
    rank: int = Field(description="0 is the gang's master.")
    gpu_ids: list[str]


class JobOut(BaseModel):
    id: str
    organization_id: str
    user_id: str | None
    name: str | None
    command: str
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str | None
    priority: int
    status: JobStatus
    node_id: str | None
    gpu_ids: list[str]
    webhook_url: str | None
    exit_code: int | None
    output_tail: str | None
    error_message: str | None
    cancel_requested: bool
    created_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    history: list[StatusChangeOut]
    nodes: int = Field(description="Nodes of the gang; gpu_count, cpu_cores and ram_mb are per node.")
    cpu_cores: int
    ram_mb: int
    time_limit_seconds: int | None = Field(description="null: the job runs without a limit.")
    held: bool
    no_requeue: bool
    attempt: int = Field(description="1 for the first run; each requeue after a lost node or agent adds one.")
    pending_reason: PendingReasonOut | None = Field(description="Why a queued job waits; null otherwise.")
    queue_position: int | None = Field(
        description="1-based among the organization's own waiting jobs; null when not queued."
    )
    estimated_start: datetime | None = Field(
        description="When time limits allow an estimate; null otherwise."
    )
    placements: list[JobPlacementOut] = Field(description="One per node once placed; rank 0 first.")
    project_id: str | None = Field(default=None, description="The job's project; null: none.")
    image: str | None = Field(
        default=None, description="The container image it runs in; null: the host sandbox."
    )


class JobBatchOut(BaseModel):
    jobs: list[JobOut] = Field(description="The jobs created, in the order they were asked for.")


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null = no more.")


# ----------------------------------------------------------------------------- billing


class CostLineOut(BaseModel):
    gpu_id: str
    gpu_type: str
    cost_per_hour: Decimal
    start_time: datetime | None
    end_time: datetime | None
    seconds: Decimal
    cost: Decimal = Field(description="The GPU time held, valued at its price, before any credit.")
    attempt: int = Field(description="The attempt that held this GPU (1 for the first run).")
    credit: Decimal = Field(description="Given back: all of it when the attempt was lost to infrastructure.")


class AttemptCostOut(BaseModel):
    attempt: int
    outcome: str | None = Field(
        description="succeeded, failed, cancelled, timed_out; requeued = its node or agent was lost, "
        "credited in full; null when recorded before attempts were told apart."
    )
    gross_cost: Decimal
    credit: Decimal
    net_cost: Decimal = Field(description="What this attempt is charged.")
    gpu_count: int
    held_seconds: Decimal
    start_time: datetime | None
    end_time: datetime | None


class JobCostOut(BaseModel):
    job_id: str
    organization_id: str
    currency: str = Field(examples=["USD"])
    total_cost: Decimal = Field(description="Charged, over all attempts: gross_cost - credit.")
    gross_cost: Decimal = Field(description="All GPU time held, attempts lost to infrastructure included.")
    credit: Decimal = Field(description="Credited for attempts lost to infrastructure.")
    gpu_count: int
    held_seconds: Decimal = Field(description="Seconds held in the attempts that are charged.")
    lines: list[CostLineOut]
    attempts: list[AttemptCostOut]
    recorded_at: datetime | None
    project_id: str | None = Field(default=None, description="The job's project; null: none.")


class JobCostListOut(BaseModel):
    costs: list[JobCostOut]
    next_cursor: str | None
    total_cost: Decimal = Field(description="Sum of this page.")


# ----------------------------------------------------------------------------- monitoring


class GpuUtilizationOut(BaseModel):
    gpu_id: str
    gpu_name: str
    gpu_type: str
    avg_utilization: float = Field(description="Percent.")
    max_utilization: float = Field(description="Percent.")
    avg_memory_used_mb: float
    samples: int
    first_sample_at: datetime | None
    last_sample_at: datetime | None


class UtilizationOut(BaseModel):
    hours: int
    gpus: list[GpuUtilizationOut]


# ----------------------------------------------------------------------------- notification


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str] = Field(description="Empty: every job event.")
    description: str | None
    status: str = Field(examples=["active"], description="active | disabled")
    is_active: bool
    error_rate: float
    consecutive_failures: int
    last_used: datetime | None
    created_at: datetime | None


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="Signing secret (whsec_...). Shown once.")


class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryAttemptOut(BaseModel):
    attempt: int
    at: datetime | None
    response_status: int | None = Field(description="null: no HTTP response.")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="This delivery (one per event and URL).")
    event_id: str = Field(description="The CloudEvent id: the webhook-id header and the body's id.")
    webhook_id: str | None = Field(description="null for a job's own webhook_url.")
    url: str
    event_type: str
    job_id: str | None
    status: str = Field(description="pending | delivered | failed")
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime | None
    delivered_at: datetime | None
    attempt_log: list[DeliveryAttemptOut]


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]


class JobWebhookSecretOut(BaseModel):
    secret: str = Field(description="Signs deliveries to every job's webhook_url in this organization.")


# ----------------------------------------------------------------------------- health


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])


class ServiceReadyOut(BaseModel):
    serving: bool = Field(description="The service answers SERVING for its overall health.")
    dependencies: dict[str, DependencyState] = Field(
        default_factory=dict,
        description="Each dependency the service has (database, broker, outbox); unknown = its probe failed.",
        examples=[{"database": "up", "broker": "down", "outbox": "up"}],
    )
    error: str | None = Field(
        default=None, description="Only when the service could not be asked: the gRPC status."
    )


class ReadyOut(BaseModel):
    status: ReadinessStatus = Field(
        description="degraded: still serving (200) with the broken parts named in `services`; "
        "unavailable (503): identity or the scheduler is not serving."
    )
    services: dict[str, ServiceReadyOut]
