"""Node agent: runs on every GPU host, registers its GPUs with fleet, runs the jobs the scheduler assigns
to the node, reports what happened, and publishes GPU metric samples. It owns no database; its only
state is a folder (``GPUFLEET_AGENT_STATE_DIR``) holding job working directories and unsent reports."""

from importlib.metadata import PackageNotFoundError, version

try:
    AGENT_VERSION = version("gpufleet")
except PackageNotFoundError:  # running from a source tree that was never installed
    AGENT_VERSION = "0.0.0+source"
