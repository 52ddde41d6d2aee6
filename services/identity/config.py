"""Identity settings: ``GPUFLEET_IDENTITY_*``, the bootstrap operator's ``GPUFLEET_ADMIN_TOKEN`` and the
invite mail's ``GPUFLEET_SMTP_URL`` / ``GPUFLEET_SMTP_FROM``.

Identity publishes no events; it reads ``gpufleet.audit.v1`` (the one audit log), hence the Kafka settings."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from shared.settings import BaseServiceSettings, KafkaSettings

from .adapters.mailer import SmtpServer

ADMIN_TOKEN_MIN_LENGTH = 16


class IdentitySettings(BaseServiceSettings, KafkaSettings):
    identity_database_url: str
    identity_grpc_listen: str = "127.0.0.1:15051"
    # The bootstrap operator's secret (env GPUFLEET_ADMIN_TOKEN, the operator named "admin"): required,
    # no default. Named operators have tokens of their own (docs/members.md).
    admin_token: SecretStr
    # Where invite mail goes (smtp://, smtp+starttls:// or smtps://, credentials in the URL); unset: no
    # mail, the inviter passes the token on.
    smtp_url: SecretStr | None = None
    smtp_from: str = "gpufleet <noreply@gpufleet.invalid>"

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # Whoever holds it can create tenants; a short token is guessable.
        if len(value.get_secret_value().strip()) < ADMIN_TOKEN_MIN_LENGTH:
            raise ValueError(f"must be at least {ADMIN_TOKEN_MIN_LENGTH} characters")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            SmtpServer.parse(value.get_secret_value().strip())  # ValueError names the problem
            return value
        return None

    def smtp_server(self) -> SmtpServer | None:
        return SmtpServer.parse(self.smtp_url.get_secret_value().strip()) if self.smtp_url else None
