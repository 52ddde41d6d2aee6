"""gRPC clients of every service the gateway calls: one channel per target, opened at start-up.

Calls made through these stubs carry the caller's key as metadata (see ``entrypoints.auth.Caller``);
the channels from :func:`shared.grpc.channel` add the trace context to each call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from gpufleet.v1 import (
    billing_pb2_grpc,
    fleet_pb2_grpc,
    identity_pb2_grpc,
    monitoring_pb2_grpc,
    notification_pb2_grpc,
    scheduler_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.grpc import Authenticator, channel

log = logging.getLogger("gpufleet.gateway.downstream")

SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")


@dataclass
class Downstream:
    authenticator: Authenticator
    identity: identity_pb2_grpc.IdentityServiceStub
    fleet: fleet_pb2_grpc.FleetServiceStub
    jobs: scheduler_pb2_grpc.JobServiceStub
    billing: billing_pb2_grpc.BillingServiceStub
    monitoring: monitoring_pb2_grpc.MonitoringServiceStub
    notification: notification_pb2_grpc.NotificationServiceStub
    channels: dict[str, grpc.aio.Channel]
    call_timeout: float

    @classmethod
    def connect(
        cls, targets: Mapping[str, str], *, auth_cache_seconds: float, call_timeout: float
    ) -> Downstream:
        missing = set(SERVICES) - set(targets)
        if missing:
            raise ValueError(f"no gRPC target for {sorted(missing)}")
        channels = {name: channel(targets[name]) for name in SERVICES}
        return cls(
            # The Authenticator opens its own channel to identity (shared.grpc has no way to hand it one).
            authenticator=Authenticator(targets["identity"], ttl=auth_cache_seconds),
            identity=identity_pb2_grpc.IdentityServiceStub(channels["identity"]),
            fleet=fleet_pb2_grpc.FleetServiceStub(channels["fleet"]),
            jobs=scheduler_pb2_grpc.JobServiceStub(channels["scheduler"]),
            billing=billing_pb2_grpc.BillingServiceStub(channels["billing"]),
            monitoring=monitoring_pb2_grpc.MonitoringServiceStub(channels["monitoring"]),
            notification=notification_pb2_grpc.NotificationServiceStub(channels["notification"]),
            channels=channels,
            call_timeout=call_timeout,
        )

    async def readiness(self, timeout: float) -> dict[str, bool]:
        """Each service's own health answer (the server-wide entry ``""``), asked concurrently."""
        results = await asyncio.gather(*(self._serving(name, timeout) for name in SERVICES))
        return dict(zip(SERVICES, results, strict=True))

    async def _serving(self, name: str, timeout: float) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channels[name])
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("downstream not ready", extra={"downstream": name, "grpc_status": exc.code().name})
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.authenticator.close()
        await asyncio.gather(*(ch.close() for ch in self.channels.values()))
