"""Metrics every process has (one registry per process: prometheus_client's default).

Names follow ``gpufleet_<what>_<unit>``; labels are few and bounded (never an id). A service's own
metrics live in ``services/<name>/adapters/metrics.py``; the event plumbing's in ``shared.event_metrics``.
The runtime serves the registry at ``/metrics`` on the process's ops listener.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PROCESS = Info("gpufleet_process", "Which gpufleet process this is")
DEPENDENCY_UP = Gauge(
    "gpufleet_dependency_up", "1 while a dependency of this process is reachable", ["dependency"]
)
GRPC_REQUESTS = Counter(
    "gpufleet_grpc_requests_total",
    "gRPC calls served, by method and status code",
    ["service", "method", "code"],
)
GRPC_SECONDS = Histogram(
    "gpufleet_grpc_request_duration_seconds",
    "Time to serve a gRPC call",
    ["service", "method"],
    buckets=_LATENCY,
)
PERIODIC_FAILURES = Counter(
    "gpufleet_periodic_task_failures_total", "Rounds of a periodic task that raised", ["task"]
)
PERIODIC_SECONDS = Histogram(
    "gpufleet_periodic_task_duration_seconds",
    "Time one round of a periodic task took",
    ["task"],
    buckets=_LATENCY,
)


def process_info(service: str) -> None:
    PROCESS.info({"service": service})
