"""Typed settings shared by every process.

Every variable has the one prefix ``GPUFLEET_``. Each service declares a settings class that mixes in
the pieces it needs, plus its own fields (named ``<service>_<thing>``), so that one fact has one variable
across the whole deployment (``GPUFLEET_IDENTITY_GRPC_TARGET`` is read by every service that asks
identity). Settings are validated at start-up; a missing required value stops the process with a
message naming the variable. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    # The process's event loop: "uvloop" (libuv; a dependency, so "auto" means it where it installs)
    # or "asyncio" (the standard library's). Logged at start-up.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str
    # Apache Kafka supports the idempotent producer; the embedded tansu broker does not.
    kafka_idempotent_producer: bool = True
    kafka_topic_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Apache Kafka with SASL/SCRAM and ACLs (docs/topics.md, deploy/kafka/): each service authenticates
    # as its own principal. PLAINTEXT, the default, is what the embedded broker of `make dev` speaks.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"GPUFLEET_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "GPUFLEET_KAFKA_SASL_USERNAME and GPUFLEET_KAFKA_SASL_PASSWORD"
            )
        return self


class IdentityClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    identity_grpc_target: str
    # How long a resolved API key is trusted before identity is asked again: the revocation latency,
    # which must stay within a second everywhere.
    auth_cache_seconds: float = Field(default=1.0, ge=0, le=1.0)
