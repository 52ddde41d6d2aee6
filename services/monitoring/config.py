"""Monitoring settings: ``GPUFLEET_MONITORING_*`` plus the shared Kafka and identity-client pieces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class MonitoringSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    monitoring_database_url: str
    monitoring_grpc_listen: str = "127.0.0.1:15055"
    # Raw samples older than this are deleted (rollups for longer windows are a later step).
    monitoring_retention_hours: int = Field(default=168, ge=1)
    monitoring_retention_sweep_seconds: float = Field(default=300.0, gt=0)
    # Job output (docs/job-output.md): per attempt at most this many bytes are kept; beyond it the first
    # and the last half of it, with a marker line between saying how many bytes were cut.
    monitoring_output_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    monitoring_output_retention_days: int = Field(default=30, ge=1)
    # An attempt that ended (job topic) without its agent's end of output is completed this long after.
    monitoring_output_end_grace_seconds: float = Field(default=15.0, ge=0, le=3600)
    monitoring_output_sweep_seconds: float = Field(default=2.0, gt=0, le=3600)
    # Signed agent records (shared.record_signing, docs/topics.md): "required" takes a metric sample or
    # an output chunk only when its node signed it; "off" takes any (a stack whose agents predate it).
    monitoring_record_signatures: Literal["required", "off"] = "required"
    # Where fleet's NodeRegistryService answers (GetRecordKeys): its agent listener when it has one.
    # Empty: fleet_grpc_target.
    fleet_agent_grpc_target: str = ""
    fleet_grpc_target: str = ""

    @property
    def record_keys_target(self) -> str:
        return self.fleet_agent_grpc_target or self.fleet_grpc_target
