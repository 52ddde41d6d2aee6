"""Notification settings: ``GPUFLEET_NOTIFICATION_*`` plus the shared Kafka and identity-client pieces."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class NotificationSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    notification_database_url: str
    notification_grpc_listen: str = "127.0.0.1:15056"
    # First retry after about this long, doubling per failed attempt (with jitter), at most an hour.
    notification_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Attempts per delivery before it is marked failed.
    notification_max_attempts: int = Field(default=8, ge=1, le=100)
    # SSRF guard: only the dev stack and tests may send to loopback/private/link-local addresses.
    notification_allow_private_targets: bool = False
    # Deliveries in flight at once (each holds one HTTP request of at most 10 s).
    notification_delivery_concurrency: int = Field(default=16, ge=1, le=1000)
