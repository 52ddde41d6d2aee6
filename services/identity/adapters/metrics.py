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
LEGACY_KEY_AUTHENTICATIONS = Counter(
    "gpufleet_identity_legacy_key_authentications_total",
    "Successful authentications with a key of the format before checksums (shared.api_keys): "
    "when this stays at zero, the old format can be retired.",
)


class PrometheusMetrics:
    """The service layer's ``IdentityMetrics`` port over the module's metrics."""

    def count_authentication(self, outcome: AuthOutcome) -> None:
        AUTHENTICATIONS.labels(outcome=outcome.value).inc()

    def count_legacy_key(self) -> None:
        LEGACY_KEY_AUTHENTICATIONS.inc()
