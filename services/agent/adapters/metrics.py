"""The node agent's metrics (served by the runtime's ops listener on the GPU host)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOB_STARTS = Counter("gpufleet_agent_job_starts_total", "Job processes started on this node")
JOB_START_FAILURES = Counter(
    "gpufleet_agent_job_start_failures_total", "Assigned jobs whose process could not be started"
)
JOB_FINISHES = Counter(
    "gpufleet_agent_job_finishes_total", "Job processes that ended, by outcome", ["outcome"]
)
JOBS_RUNNING = Gauge("gpufleet_agent_jobs_running", "Job processes running on this node now")
PENDING_REPORTS = Gauge(
    "gpufleet_agent_pending_reports", "Reports to the scheduler not yet acknowledged (kept on disk)"
)

JOBS_TIMED_OUT = Counter(
    "gpufleet_agent_jobs_timed_out_total", "Jobs this agent stopped because they ran past their time limit"
)
TIME_LIMIT_WARNINGS = Counter(
    "gpufleet_agent_time_limit_warnings_total", "Jobs warned that their time limit is near"
)


def finished(exit_code: int | None, cancelled: bool, error: str | None, *, timed_out: bool = False) -> None:
    if timed_out:
        outcome = "timed_out"
        JOBS_TIMED_OUT.inc()
    else:
        outcome = "cancelled" if cancelled else "succeeded" if exit_code == 0 and not error else "failed"
    JOB_FINISHES.labels(outcome=outcome).inc()
