"""Event contracts: topic names and the pydantic payload of every event type, in one place."""

from pydantic import BaseModel

from shared.contracts import audit, costs, fleet, jobs, metrics, topics

# topic -> {event type -> payload model}; the AsyncAPI document is generated from this table.
CATALOG: dict[str, dict[str, type[BaseModel]]] = {
    topics.JOBS: jobs.EVENT_TYPES,
    topics.COSTS: costs.EVENT_TYPES,
    topics.FLEET: fleet.EVENT_TYPES,
    topics.METRICS: metrics.EVENT_TYPES,
    topics.AUDIT: audit.EVENT_TYPES,
}

__all__ = ["CATALOG", "audit", "costs", "fleet", "jobs", "metrics", "topics"]
