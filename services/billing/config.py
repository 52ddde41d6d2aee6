"""Billing settings: ``GPUFLEET_BILLING_*`` plus the shared Kafka and identity-client pieces."""

from __future__ import annotations

from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings


class BillingSettings(BaseServiceSettings, KafkaSettings, IdentityClientSettings):
    billing_database_url: str
    billing_grpc_listen: str = "127.0.0.1:15054"
