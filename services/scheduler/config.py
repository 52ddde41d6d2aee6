"""Typed settings of the scheduler (``GPUFLEET_*``; see docs/architecture.md).

The scheduling policy settings (JSON in environment variables) seed the stored policy once, on the
first start after migration 004; from then on it is set through PolicyService (operator and organization
admin calls, audited, applied on the next cycle: docs/policy.md). Keys are organization ids, e.g.
``GPUFLEET_SCHEDULER_QUOTAS='{"<org>": {"a100-80gb": {"nominal": 8, "borrowing_limit": 4,
"lending_limit": 8}}}'``.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.contracts.limits import MAX_TIME_LIMIT_SECONDS
from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class QuotaSetting(BaseModel):
    nominal: int = Field(default=0, ge=0)
    borrowing_limit: int | None = Field(default=None, ge=0)
    lending_limit: int | None = Field(default=None, ge=0)


class UserCapSetting(BaseModel):
    max_running_jobs: int | None = Field(default=None, ge=0)
    max_gpus: int | None = Field(default=None, ge=0)


class SchedulerSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    model_config = SettingsConfigDict(env_prefix="GPUFLEET_", extra="ignore", frozen=True)

    scheduler_database_url: str
    scheduler_grpc_listen: str = "127.0.0.1:15053"
    # Node agents' NodeAgentService on a listener of its own, e.g. "0.0.0.0:15063": then only there, and
    # JobService/PolicyService only on scheduler_grpc_listen. Empty: one listener serves both, as before
    # (logged at start-up).
    scheduler_agent_grpc_listen: str = ""
    fleet_grpc_target: str
    # Where fleet's NodeRegistryService answers (AuthenticateNode, to verify agents' credentials): fleet's
    # agent listener when it has one (GPUFLEET_FLEET_AGENT_GRPC_LISTEN). Empty: fleet_grpc_target.
    fleet_agent_grpc_target: str = ""
    # Longest wait between two scheduling steps when nothing wakes the loop.
    scheduler_tick_seconds: float = Field(default=0.5, gt=0, le=60)
    # How long fleet's GPU type names are trusted before fleet is asked again.
    scheduler_gpu_type_cache_seconds: float = Field(default=30.0, ge=0)
    # The leader lease: renewed every renew seconds; a standby takes over once it is ttl seconds old.
    scheduler_lease_ttl_seconds: float = Field(default=5.0, gt=0, le=300)
    scheduler_lease_renew_seconds: float = Field(default=1.0, gt=0, le=60)
    # Policy (operator settings): fair-share weights per organization, usage half-life, GPU-type
    # weights (Slurm's TRESBillingWeights), quotas per organization and GPU type, per-user caps.
    scheduler_fair_shares: dict[UUID, float] = Field(default_factory=dict)
    scheduler_half_life_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    scheduler_gpu_type_weights: dict[str, float] = Field(default_factory=dict)
    scheduler_quotas: dict[UUID, dict[str, QuotaSetting]] = Field(default_factory=dict)
    scheduler_dedicated_lending_limit: int = Field(default=0, ge=0)
    scheduler_user_caps: dict[UUID, UserCapSetting] = Field(default_factory=dict)
    # Time limits: the default for a job that names none (None: no limit) and the most one may ask.
    scheduler_default_time_limit_seconds: int | None = Field(default=None, ge=1, le=MAX_TIME_LIMIT_SECONDS)
    scheduler_max_time_limit_seconds: int | None = Field(default=None, ge=1, le=MAX_TIME_LIMIT_SECONDS)
    # Attempts of a job requeued after its node or agent was lost, the first run included.
    scheduler_max_attempts: int = Field(default=3, ge=1, le=100)
