"""Fleet's Prometheus metrics (the process's default registry; the runtime serves it).

The gauges are refreshed by each offline-sweep round from one grouped count, so they lag by at most
one sweep interval and cost no query per scrape."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from ..domain.model import GPU_STATUSES, NODE_STATUSES
from ..service_layer.unit_of_work import Census

HEARTBEATS = Counter("gpufleet_fleet_heartbeats_total", "Agent heartbeats received.")
NODES = Gauge("gpufleet_fleet_nodes", "Registered nodes, by status (as of the last sweep).", ["status"])
GPUS = Gauge("gpufleet_fleet_gpus", "Registered GPUs, by status (as of the last sweep).", ["status"])
for _status in NODE_STATUSES:
    NODES.labels(status=_status)
for _status in GPU_STATUSES:
    GPUS.labels(status=_status)


class PrometheusMetrics:
    """The service layer's ``FleetMetrics`` port over the module's metrics."""

    def count_heartbeat(self) -> None:
        HEARTBEATS.inc()

    def show_census(self, census: Census) -> None:
        for status, n in census.nodes.items():
            NODES.labels(status=status).set(n)
        for status, n in census.gpus.items():
            GPUS.labels(status=status).set(n)
