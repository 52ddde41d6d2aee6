"""The agent's job-output metrics (see service_layer/output_shipper.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTPUT_SHIPPED_BYTES = Counter(
    "gpufleet_agent_output_shipped_bytes_total", "Job output bytes published to the output topic"
)
OUTPUT_DROPPED_BYTES = Counter(
    "gpufleet_agent_output_dropped_bytes_total",
    "Job output bytes given up on: the job had ended and the broker stayed unreachable",
)
ATTEMPTS_SHIPPING = Gauge(
    "gpufleet_agent_output_attempts_shipping", "Job attempts whose output is being shipped now"
)
