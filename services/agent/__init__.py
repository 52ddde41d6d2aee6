"""Node agent: runs on every GPU host, registers its GPUs with fleet, runs the jobs the scheduler assigns
to the node, reports what happened, and publishes GPU metric samples. It owns no database; its only
state is a folder (``GPUFLEET_AGENT_STATE_DIR``) holding job working directories and unsent reports."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Lazy: the per-job supervisor imports this package at every job start, and reading the installed
    # package metadata costs more than the rest of its start-up.
    if name == "AGENT_VERSION":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("gpufleet")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+source"
    raise AttributeError(name)
