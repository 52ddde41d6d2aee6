"""Identity settings: ``GPUFLEET_IDENTITY_*`` plus the operator's ``GPUFLEET_ADMIN_TOKEN``.

Identity publishes no events yet, so it needs no Kafka settings."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from shared.settings import BaseServiceSettings

ADMIN_TOKEN_MIN_LENGTH = 16


class IdentitySettings(BaseServiceSettings):
    identity_database_url: str
    identity_grpc_listen: str = "127.0.0.1:15051"
    # Operator secret for CreateOrganization (env GPUFLEET_ADMIN_TOKEN): required, no default.
    admin_token: SecretStr

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # Whoever holds it can create tenants; a short token is guessable.
        if len(value.get_secret_value().strip()) < ADMIN_TOKEN_MIN_LENGTH:
            raise ValueError(f"must be at least {ADMIN_TOKEN_MIN_LENGTH} characters")
        return value
