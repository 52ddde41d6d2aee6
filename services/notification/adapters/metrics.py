"""Notification's Prometheus metrics (default registry, served by the runtime) and the
``DeliveryMetrics`` port over them.

``gpufleet_webhook_deliveries_total{outcome}`` counts recorded attempts by what they did to their
delivery (``delivered``, ``retrying``, ``failed``, ``gone``, ``late``; see ``domain.model.Outcome``)
plus ``disabled``: deliveries closed unsent because their webhook was switched off.
``gpufleet_webhook_delivery_seconds`` is the latency of each HTTP attempt; ``gpufleet_webhook_pending``
the deliveries due now and not yet claimed by a worker (the backlog), refreshed by the worker when it
goes idle and at most every few seconds while it is saturated.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "gpufleet_webhook_deliveries_total",
    "Webhook delivery attempts by outcome, and deliveries closed because their webhook was disabled.",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "gpufleet_webhook_delivery_seconds",
    "Latency of one webhook HTTP attempt (bounded by the 10 s timeout).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PENDING = Gauge("gpufleet_webhook_pending", "Webhook deliveries due now and not yet claimed by a worker.")


class PrometheusDeliveryMetrics:
    def outcome(self, outcome: str) -> None:
        DELIVERIES.labels(outcome=outcome).inc()

    def attempt_seconds(self, seconds: float) -> None:
        DELIVERY_SECONDS.observe(max(seconds, 0.0))

    def due(self, count: int) -> None:
        PENDING.set(count)
