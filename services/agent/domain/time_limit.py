"""When a job with a time limit is warned and when it is ended (relative to its start)."""

from __future__ import annotations

WARNING_LEAD_SECONDS = 60.0
WARNING_FRACTION = 0.9


def warning_after(limit_seconds: float) -> float:
    """Seconds after the start at which the job is told its end is near: at 90% of the limit or a
    minute before the end, whichever is later (a long job is not warned an hour early)."""
    return max(limit_seconds * WARNING_FRACTION, limit_seconds - WARNING_LEAD_SECONDS)
