"""Job-output metrics of monitoring (the default registry; the runtime serves it)."""

from __future__ import annotations

from prometheus_client import Counter

BYTES_STORED = Counter(
    "gpufleet_monitoring_output_stored_bytes_total", "Job output bytes stored (replayed ones not counted)."
)
CHUNKS_DUPLICATE = Counter(
    "gpufleet_monitoring_output_duplicate_chunks_total", "Job output chunks received again and skipped."
)
BYTES_LOST = Counter(
    "gpufleet_monitoring_output_lost_bytes_total",
    "Job output bytes that never arrived (a gap before a later chunk); a marker stands for them.",
)
CHUNKS_REFUSED = Counter(
    "gpufleet_monitoring_output_refused_chunks_total",
    "Job output chunks from a node their attempt was not placed on (or naming no node); never stored.",
)
COMPLETED_WITHOUT_EOF = Counter(
    "gpufleet_monitoring_output_completed_without_eof_total",
    "Attempts whose output was completed by the job's end because the agent's end of output never came.",
)
CHUNKS_PARKED = Counter(
    "gpufleet_monitoring_output_parked_chunks_total",
    "Job output chunks kept aside because they came before the job topic said where the attempt runs.",
)
