"""Typed settings of the scheduler (``GPUFLEET_*``; see docs/architecture.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import AgentTokenSettings, BaseServiceSettings, IdentityClientSettings, KafkaSettings


class SchedulerSettings(BaseServiceSettings, KafkaSettings, AgentTokenSettings, IdentityClientSettings):
    model_config = SettingsConfigDict(env_prefix="GPUFLEET_", extra="ignore", frozen=True)

    scheduler_database_url: str
    scheduler_grpc_listen: str = "127.0.0.1:50053"
    fleet_grpc_target: str
    # Longest wait between two placement rounds when nothing wakes the loop (replica take-over time too).
    scheduler_tick_seconds: float = Field(default=0.5, gt=0, le=60)
    # How long fleet's GPU type names are trusted before fleet is asked again.
    scheduler_gpu_type_cache_seconds: float = Field(default=30.0, ge=0)
