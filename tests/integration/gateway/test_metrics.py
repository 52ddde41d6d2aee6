"""HTTP metrics: counted per route template and status, never per concrete path."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from shared.contracts.limits import MAX_REQUEST_BODY_BYTES
from tests.integration.gateway import fakes

pytestmark = pytest.mark.integration


def count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("gpufleet_http_requests_total", labels) or 0.0


def observed(method: str, route: str) -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("gpufleet_http_request_duration_seconds_count", labels) or 0.0


def routes_seen() -> set[str]:
    return {
        s.labels["route"]
        for metric in REGISTRY.collect()
        if metric.name == "gpufleet_http_requests"
        for s in metric.samples
    }


async def test_requests_are_counted_by_route_template(api, rec):
    before, timed = count("GET", "/v1/jobs/{job_id}", 200), observed("GET", "/v1/jobs/{job_id}")
    for _ in range(2):
        assert (await api.get(f"/v1/jobs/{fakes.JOB_ID}")).status_code == 200
    assert (await api.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 200
    assert count("GET", "/v1/jobs/{job_id}", 200) == before + 3
    assert observed("GET", "/v1/jobs/{job_id}") == timed + 3
    assert not [r for r in routes_seen() if fakes.JOB_ID in r]


async def test_failures_carry_their_status(api, rec):
    before_404 = count("GET", "/v1/jobs/{job_id}", 404)
    assert (await api.get("/v1/jobs/not-a-uuid")).status_code == 404
    assert count("GET", "/v1/jobs/{job_id}", 404) == before_404 + 1
    before_405 = count("PUT", "/v1/jobs", 405)
    assert (await api.put("/v1/jobs")).status_code == 405
    assert count("PUT", "/v1/jobs", 405) == before_405 + 1


async def test_a_path_no_route_matches_is_unmatched(api):
    before = count("GET", "unmatched", 404)
    path = f"/v1/no-such-thing/{uuid.uuid4()}"
    assert (await api.get(path)).status_code == 404
    assert count("GET", "unmatched", 404) == before + 1
    assert path not in routes_seen()


async def test_a_body_refused_before_routing_still_names_its_route(api):
    before = count("POST", "/v1/jobs", 413)
    r = await api.post("/v1/jobs", content=b" " * (MAX_REQUEST_BODY_BYTES + 1))
    assert r.status_code == 413
    assert count("POST", "/v1/jobs", 413) == before + 1


async def test_an_unusual_method_is_other(anon):
    before = count("other", "/livez", 405)
    assert (await anon.request("BREW", "/livez")).status_code == 405
    assert count("other", "/livez", 405) == before + 1
