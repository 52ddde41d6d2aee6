"""Identity's metrics: names and labels as operators query them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.identity.adapters import metrics
from services.identity.domain.model import AuthOutcome

NAME = "gpufleet_identity_authentications_total"


def sample(outcome: str) -> float | None:
    return REGISTRY.get_sample_value(NAME, {"outcome": outcome})


def test_every_outcome_is_exported_from_the_start() -> None:
    assert all(sample(o.value) is not None for o in AuthOutcome)


def test_an_authentication_counts_under_its_outcome_only() -> None:
    before = {o: sample(o.value) or 0.0 for o in AuthOutcome}
    metrics.PrometheusMetrics().count_authentication(AuthOutcome.EXPIRED)
    after = {o: sample(o.value) or 0.0 for o in AuthOutcome}
    assert {o: after[o] - before[o] for o in AuthOutcome} == {
        o: (1.0 if o is AuthOutcome.EXPIRED else 0.0) for o in AuthOutcome
    }
