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
    # The event stream (GET /v1/events): a heartbeat after this long without an event (the gateway
    # writes it as an SSE comment, so proxies keep the connection open), and how often a stream
    # re-checks its caller's key (a revoked or expired key ends it within about this long).
    notification_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    notification_stream_reauth_seconds: float = Field(default=5.0, gt=0, le=60)
    # Retention of the per-organization event log: events stored longer ago than this, and beyond the
    # newest this many of an organization, are pruned every prune interval. A cursor older than what is
    # kept resumes at the oldest kept event.
    notification_event_log_retention_hours: float = Field(default=7 * 24.0, gt=0)
    notification_event_log_max_events: int = Field(default=100_000, ge=1)
    notification_event_log_prune_seconds: float = Field(default=300.0, gt=0)
