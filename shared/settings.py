"""Typed settings shared by every process.

Every variable has the one prefix ``GPUFLEET_``. Each service declares a settings class that mixes in
the pieces it needs, plus its own fields (named ``<service>_<thing>``), so that one fact has one variable
across the whole deployment (``GPUFLEET_IDENTITY_GRPC_TARGET`` is read by every service that asks
identity). Settings are validated at start-up; a missing required value stops the process with a
message naming the variable. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "GPUFLEET_"


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    # OpenTelemetry: "none" keeps spans in-process (context still propagates), "console" prints them.
    otel_exporter: str = Field(default="none", pattern="^(none|console)$")
    # The process's operations listener: Prometheus text at /metrics, /livez and /readyz (JSON).
    # "host:port"; port 0 picks a free one (logged); empty switches it off.
    ops_listen: str = "127.0.0.1:0"
    # SIGTERM: how long in-flight work (RPCs, event handlers) may take to finish before teardown.
    drain_seconds: float = Field(default=10.0, ge=0)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str
    # Apache Kafka supports the idempotent producer; the embedded tansu broker does not.
    kafka_idempotent_producer: bool = True
    kafka_topic_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)


class AgentTokenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Shared secret node agents present to fleet and scheduler.
    agent_token: SecretStr


class IdentityClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    identity_grpc_target: str
    # How long a resolved API key is trusted before identity is asked again: the revocation latency,
    # which must stay within a second everywhere.
    auth_cache_seconds: float = Field(default=1.0, ge=0, le=1.0)
