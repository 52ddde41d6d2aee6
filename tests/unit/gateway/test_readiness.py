"""What /readyz concludes from the services' health answers (pure)."""

from __future__ import annotations

import pytest

from services.gateway.domain.readiness import CORE_SERVICES, ServiceHealth, status

UP_DB = {"database": "up"}


def fleet(**overrides: ServiceHealth) -> dict[str, ServiceHealth]:
    services = {
        name: ServiceHealth(serving=True, dependencies=dict(UP_DB))
        for name in ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
    }
    services.update(overrides)
    return services


def test_all_serving_and_up_is_ready():
    assert status(fleet()) == "ready"
    assert status(fleet(fleet=ServiceHealth(serving=True))) == "ready"  # no dependencies published


@pytest.mark.parametrize("core", CORE_SERVICES)
@pytest.mark.parametrize(
    "health", [ServiceHealth(serving=False), ServiceHealth(serving=False, error="UNAVAILABLE")]
)
def test_a_core_service_not_serving_is_unavailable(core, health):
    assert status(fleet(**{core: health})) == "unavailable"


def test_a_missing_core_service_is_unavailable():
    services = fleet()
    del services["scheduler"]
    assert status(services) == "unavailable"


@pytest.mark.parametrize(
    "overrides",
    [
        {"notification": ServiceHealth(serving=False, error="DEADLINE_EXCEEDED")},
        {"scheduler": ServiceHealth(serving=True, dependencies={"database": "up", "broker": "down"})},
        {"identity": ServiceHealth(serving=True, dependencies={"database": "up", "outbox": "unknown"})},
        {"billing": ServiceHealth(serving=True, dependencies={"database": "down"})},
    ],
)
def test_anything_else_broken_is_degraded_not_unavailable(overrides):
    assert status(fleet(**overrides)) == "degraded"
