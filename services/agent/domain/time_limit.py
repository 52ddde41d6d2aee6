"""When a job with a time limit is warned (relative to its start). The rule is shared with the scheduler,
which announces the same moment on the job topic, so it lives in :mod:`shared.time_limit`; this name
stays for the agent's existing callers."""

from __future__ import annotations

from shared.time_limit import warning_after

__all__ = ["warning_after"]
