"""Composition root: turns settings into the gRPC clients the routes use."""

from __future__ import annotations

from services.gateway.adapters.downstream import Downstream
from services.gateway.config import GatewaySettings


def connect_downstream(settings: GatewaySettings) -> Downstream:
    return Downstream.connect(
        settings.grpc_targets(),
        auth_cache_seconds=settings.auth_cache_seconds,
        call_timeout=settings.gateway_grpc_timeout_seconds,
    )
