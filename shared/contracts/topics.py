"""Versioned topic names. A breaking payload change gets a new topic (``.v2``), never an edit."""

JOBS = "gpufleet.jobs.v1"  # public: every job lifecycle event, key = job id
COSTS = "gpufleet.costs.v1"  # public: every cost record, key = job id
FLEET = "gpufleet.fleet.v1"  # internal: node and GPU inventory changes, key = gpu id / node id
METRICS = "gpufleet.metrics.v1"  # internal: GPU metric samples from agents, key = node id
OUTPUT = "gpufleet.output.v1"  # internal: job output chunks from agents, key = job id


def dead_letter(topic: str) -> str:
    """Where a consumer of ``topic`` parks records it can never process (with the reason in a header)."""
    return f"{topic}.dlq"


def outbox_marker(schema: str) -> str:
    """One marker topic per outbox: its emptiness tells that relay the broker lost its data."""
    return f"gpufleet.outbox-marker.{schema}.v1"


ALL = (JOBS, COSTS, FLEET, METRICS)
