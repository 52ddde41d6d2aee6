"""What the gateway's ``/readyz`` says, from what each downstream service's health service answered.

The gateway's core work is taking and answering tenants' requests about jobs: it cannot do it without
identity (every request is authenticated) or the scheduler. Only then is it ``unavailable`` (HTTP 503,
out of the load balancer). Any other service not serving, or any dependency of any service down (say,
the scheduler's broker: submits still land in its outbox), makes it ``degraded``: still 200, with the
broken parts named, so a replica that can do most of its work stays in rotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

CORE_SERVICES = ("identity", "scheduler")

DependencyState = Literal["up", "down", "unknown"]
UP: Final = "up"
DOWN: Final = "down"
UNKNOWN: Final = "unknown"

ReadinessStatus = Literal["ready", "degraded", "unavailable"]
READY: Final = "ready"
DEGRADED: Final = "degraded"
UNAVAILABLE: Final = "unavailable"


@dataclass(frozen=True)
class ServiceHealth:
    """One service's answer: its overall state (health entry ``""``) and each dependency it publishes
    (``shared.readiness.health_name``). A dependency the service does not have is absent; ``unknown``
    means its probe failed (timeout, connection lost) instead of answering."""

    serving: bool
    dependencies: dict[str, DependencyState] = field(default_factory=dict)
    error: str | None = None  # why the service could not be asked at all (a gRPC status name)

    @property
    def healthy(self) -> bool:
        return self.serving and all(state == UP for state in self.dependencies.values())


def status(services: Mapping[str, ServiceHealth]) -> ReadinessStatus:
    if not all(name in services and services[name].serving for name in CORE_SERVICES):
        return UNAVAILABLE
    return READY if all(s.healthy for s in services.values()) else DEGRADED
