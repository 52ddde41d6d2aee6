"""The scheduler's metrics (served by the runtime's ops listener)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text

from shared.db import Database

JOBS_BY_STATE = Gauge("gpufleet_scheduler_jobs", "Jobs by state (queue depth: state=queued)", ["state"])
CYCLE_SECONDS = Histogram(
    "gpufleet_scheduler_cycle_seconds",
    "Time one scheduling cycle took, its transaction included (leader only)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PLACEMENTS = Counter("gpufleet_scheduler_placements_total", "Jobs placed on GPUs")
CYCLE_FAILURES = Counter("gpufleet_scheduler_cycle_failures_total", "Scheduling rounds that failed")
PENDING_WRITES = Counter(
    "gpufleet_scheduler_pending_reasons_written_total", "Queued jobs whose why-pending answer was rewritten"
)

_STATES = ("queued", "scheduled", "running", "succeeded", "failed", "cancelled", "timed_out")


async def measure_jobs(db: Database) -> None:
    """Refresh the jobs-by-state gauge with one grouped count (every state appears, zeros included)."""
    async with db.transaction(system=True) as session:
        rows = (await session.execute(text("SELECT status, count(*) FROM jobs GROUP BY status"))).all()
    counts = {status: n for status, n in rows}
    for state in _STATES:
        JOBS_BY_STATE.labels(state=state).set(counts.get(state, 0))
