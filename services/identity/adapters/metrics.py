"""Identity's Prometheus metrics (the process's default registry; the runtime serves it)."""

from __future__ import annotations

from prometheus_client import Counter

from ..domain.model import AuthOutcome

AUTHENTICATIONS = Counter(
    "gpufleet_identity_authentications_total",
    "API key authentications, by how they ended (callers are only told whether they succeeded).",
    ["outcome"],
)
for _outcome in AuthOutcome:  # every series exists from the start, so rate() sees the first failure
    AUTHENTICATIONS.labels(outcome=_outcome.value)


class PrometheusMetrics:
    """The service layer's ``IdentityMetrics`` port over the module's metrics."""

    def count_authentication(self, outcome: AuthOutcome) -> None:
        AUTHENTICATIONS.labels(outcome=outcome.value).inc()
