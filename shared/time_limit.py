"""When a job with a time limit is warned that its end is near, relative to its attempt's start.

One formula for two services: the node agent writes the warning into the job's output and stops the job
at the limit; the scheduler announces the same moment on the job topic (``gpufleet.job.time_limit_warning``,
shared/contracts/jobs.py). Neither may import the other, so the rule lives here.
"""

from __future__ import annotations

WARNING_LEAD_SECONDS = 60.0
WARNING_FRACTION = 0.9


def warning_after(limit_seconds: float) -> float:
    """Seconds after the start at which the job is told its end is near: at 90% of the limit or a
    minute before the end, whichever is later (a long job is not warned an hour early)."""
    return max(limit_seconds * WARNING_FRACTION, limit_seconds - WARNING_LEAD_SECONDS)


def warning_message(limit_seconds: int, left_seconds: int) -> str:
    """The warning's words, the same in the job's output and in the event's ``reason``."""
    return f"time limit of {limit_seconds} s: the job is stopped in {left_seconds} s (SIGTERM, then SIGKILL)"
