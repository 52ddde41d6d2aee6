"""gRPC clients of every service the gateway calls: one channel per target, opened at start-up.

Calls made through these stubs carry the caller's key as metadata (see ``entrypoints.auth.Caller``);
the channels from :func:`shared.grpc.channel` add the trace context to each call. The Authenticator
resolves keys over the same identity channel as the identity stub (``use_channel=``), so the gateway
holds exactly one connection per service.
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
    output_pb2_grpc,
    scheduler_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.gateway.domain.readiness import DOWN, UNKNOWN, UP, DependencyState, ServiceHealth
from shared.grpc import Authenticator, channel
from shared.readiness import DEPENDENCIES, health_name

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
    output: output_pb2_grpc.JobOutputServiceStub  # job output (monitoring's channel)
    projects: identity_pb2_grpc.ProjectServiceStub  # projects (identity's channel)

    @classmethod
    def connect(
        cls, targets: Mapping[str, str], *, auth_cache_seconds: float, call_timeout: float
    ) -> Downstream:
        missing = set(SERVICES) - set(targets)
        if missing:
            raise ValueError(f"no gRPC target for {sorted(missing)}")
        channels = {name: channel(targets[name]) for name in SERVICES}
        return cls(
            authenticator=Authenticator(
                targets["identity"], ttl=auth_cache_seconds, use_channel=channels["identity"]
            ),
            identity=identity_pb2_grpc.IdentityServiceStub(channels["identity"]),
            fleet=fleet_pb2_grpc.FleetServiceStub(channels["fleet"]),
            jobs=scheduler_pb2_grpc.JobServiceStub(channels["scheduler"]),
            billing=billing_pb2_grpc.BillingServiceStub(channels["billing"]),
            monitoring=monitoring_pb2_grpc.MonitoringServiceStub(channels["monitoring"]),
            notification=notification_pb2_grpc.NotificationServiceStub(channels["notification"]),
            channels=channels,
            call_timeout=call_timeout,
            output=output_pb2_grpc.JobOutputServiceStub(channels["monitoring"]),
            projects=identity_pb2_grpc.ProjectServiceStub(channels["identity"]),
        )

    async def readiness(self, timeout: float) -> dict[str, ServiceHealth]:
        """Every service's health, every entry of every service asked at once, each within ``timeout``."""
        results = await asyncio.gather(*(self._health(name, timeout) for name in SERVICES))
        return dict(zip(SERVICES, results, strict=True))

    async def _health(self, name: str, timeout: float) -> ServiceHealth:
        stub = health_pb2_grpc.HealthStub(self.channels[name])
        entries = ("", *(health_name(d) for d in DEPENDENCIES))
        answers = await asyncio.gather(*(self._check(stub, entry, timeout) for entry in entries))
        overall, *per_dependency = answers
        dependencies: dict[str, DependencyState] = {}
        for dependency, answer in zip(DEPENDENCIES, per_dependency, strict=True):
            if isinstance(answer, grpc.aio.AioRpcError):
                if answer.code() == grpc.StatusCode.NOT_FOUND:
                    continue  # the service has no such dependency
                dependencies[dependency] = UNKNOWN
            else:
                dependencies[dependency] = UP if answer else DOWN
        if isinstance(overall, grpc.aio.AioRpcError):
            # Not serving; whatever dependency entries did answer still say why.
            log.warning(
                "downstream not ready", extra={"downstream": name, "grpc_status": overall.code().name}
            )
            answered: dict[str, DependencyState] = {d: s for d, s in dependencies.items() if s != UNKNOWN}
            return ServiceHealth(serving=False, error=overall.code().name, dependencies=answered)
        return ServiceHealth(serving=overall, dependencies=dependencies)

    @staticmethod
    async def _check(
        stub: health_pb2_grpc.HealthStub, service: str, timeout: float
    ) -> bool | grpc.aio.AioRpcError:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return exc
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.authenticator.close()  # does not own the identity channel: closed below
        await asyncio.gather(*(ch.close() for ch in self.channels.values()))
