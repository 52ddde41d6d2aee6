"""The gateway's metrics (prometheus_client's default registry; the runtime serves it).

Requests are labelled by the route *template* (``/v1/jobs/{job_id}``), never the concrete path, so a
client cannot grow the label set; a request no route matched counts as ``unmatched``, and a method
outside HTTP's usual ones as ``other``.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "gpufleet_http_requests_total",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "gpufleet_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["method", "route"],
    buckets=_LATENCY,
)


def method_label(method: str) -> str:
    return method if method in _METHODS else "other"


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    labels = (method_label(method), route or UNMATCHED)
    HTTP_REQUESTS.labels(*labels, str(status)).inc()
    HTTP_SECONDS.labels(*labels).observe(seconds)
