"""Identity settings: ``GPUFLEET_IDENTITY_*``, the bootstrap operator's ``GPUFLEET_ADMIN_TOKEN`` and the
invite mail's ``GPUFLEET_SMTP_URL`` / ``GPUFLEET_SMTP_FROM``.

Identity publishes no events; it reads ``gpufleet.audit.v1`` (the one audit log), hence the Kafka settings."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from shared.settings import BaseServiceSettings, KafkaSettings

from .adapters.mailer import SmtpServer

ADMIN_TOKEN_MIN_LENGTH = 16
# A retention shorter than this could let an outbox replay (7 days) bring back a deleted record after its
# ledger row was pruned (8 days), and an audit log is kept for questions asked long after the fact.
AUDIT_RETENTION_MIN_DAYS = 30


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
    # Audit records older than this many days are deleted (hourly, in chunks); 0: kept indefinitely.
    identity_audit_retention_days: int = 0

    @field_validator("identity_audit_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value != 0 and value < AUDIT_RETENTION_MIN_DAYS:
            raise ValueError(f"must be 0 (keep indefinitely) or at least {AUDIT_RETENTION_MIN_DAYS} days")
        return value

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
