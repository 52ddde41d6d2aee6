"""Gateway settings: where it listens and where every service it calls lives."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, BaseServiceSettings, IdentityClientSettings


class GatewaySettings(BaseServiceSettings, IdentityClientSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    # No defaults: a gateway pointed at the wrong place should refuse to start, not time out later.
    fleet_grpc_target: str
    scheduler_grpc_target: str
    billing_grpc_target: str
    monitoring_grpc_target: str
    notification_grpc_target: str
    # Deadline of one downstream call, and of one readiness probe.
    gateway_grpc_timeout_seconds: float = Field(default=10.0, gt=0)
    gateway_readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    def grpc_targets(self) -> dict[str, str]:
        return {
            "identity": self.identity_grpc_target,
            "fleet": self.fleet_grpc_target,
            "scheduler": self.scheduler_grpc_target,
            "billing": self.billing_grpc_target,
            "monitoring": self.monitoring_grpc_target,
            "notification": self.notification_grpc_target,
        }
