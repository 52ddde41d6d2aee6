"""Billing's Prometheus metrics (the default registry; the runtime serves it). Counted by the handlers
once the unit of work has committed, so a rolled-back or redelivered event counts nothing."""

from __future__ import annotations

from prometheus_client import Counter

COSTS_RECORDED = Counter("gpufleet_billing_costs_recorded_total", "Jobs billed (one cost record per job).")
COST_USD = Counter(
    "gpufleet_billing_cost_usd_total",
    "Cost billed, in USD, by GPU type (the catalog's few types: never an id).",
    ["gpu_type"],
)
