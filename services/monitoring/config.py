"""Monitoring settings: ``GPUFLEET_MONITORING_*`` plus the shared Kafka and identity-client pieces."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class MonitoringSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    monitoring_database_url: str
    monitoring_grpc_listen: str = "127.0.0.1:15055"
    # Raw samples older than this are deleted (rollups for longer windows are a later step).
    monitoring_retention_hours: int = Field(default=168, ge=1)
    monitoring_retention_sweep_seconds: float = Field(default=300.0, gt=0)
