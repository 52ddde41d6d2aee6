"""Monitoring's Prometheus metrics (the default registry; the runtime serves it). Observed by the
ingestion handler once its unit of work has committed, so a rolled-back batch counts nothing."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SAMPLES_INGESTED = Counter(
    "gpufleet_monitoring_samples_ingested_total", "GPU samples stored (redelivered ones not counted)."
)
INGEST_BATCH_SECONDS = Histogram(
    "gpufleet_monitoring_ingest_batch_seconds",
    "Time to store one consumed batch, commit included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INGEST_BATCH_SIZE = Histogram(
    "gpufleet_monitoring_ingest_batch_size",
    "Samples in one consumed batch (redelivered ones included).",
    # A batch is up to 500 node records (shared.consumers.subscribe_batch) of a few GPUs each.
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
SAMPLES_CLAIM_DISPUTED = Counter(
    "gpufleet_monitoring_samples_claim_disputed_total",
    "Samples whose agent named another organization (or none) than the scheduler's allocation; "
    "stored as the allocation says.",
)
SAMPLES_UNATTRIBUTED = Counter(
    "gpufleet_monitoring_samples_unattributed_total",
    "Samples stored without an organization: idle, or their allocation was not known yet (attributed "
    "when it arrives).",
)
SAMPLES_REATTRIBUTED = Counter(
    "gpufleet_monitoring_samples_reattributed_total",
    "Samples whose job and organization were set again because an allocation arrived or ended.",
)
