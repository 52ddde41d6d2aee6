"""Billing's Prometheus metrics (the default registry; the runtime serves it). Counted by the handlers
once the unit of work has committed, so a rolled-back or redelivered event counts nothing."""

from __future__ import annotations

from prometheus_client import Counter

from ..domain.costs import AttemptCost

COSTS_RECORDED = Counter(
    "gpufleet_billing_costs_recorded_total",
    "Attempts of jobs recorded (one cost record per attempt that held GPUs, credited ones included).",
)
COST_USD = Counter(
    "gpufleet_billing_cost_usd_total",
    "Cost charged, in USD (net of credits), by GPU type (the catalog's few types: never an id).",
    ["gpu_type"],
)
CREDITS_USD = Counter(
    "gpufleet_billing_credits_usd_total",
    "GPU time lost to infrastructure and credited back, in USD, by GPU type.",
    ["gpu_type"],
)


def counted(cost: AttemptCost) -> None:
    COSTS_RECORDED.inc()
    for line in cost.lines:
        COST_USD.labels(gpu_type=line.gpu_type).inc(float(line.net))
        if line.credit:
            CREDITS_USD.labels(gpu_type=line.gpu_type).inc(float(line.credit))
