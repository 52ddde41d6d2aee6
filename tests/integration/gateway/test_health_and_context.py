"""Liveness, readiness against the services' gRPC health, request ids and trace propagation."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from shared import telemetry

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


async def test_healthz_needs_no_key(anon):
    r = await anon.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_service_serves(anon):
    r = await anon.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "services": dict.fromkeys(
            ("identity", "fleet", "scheduler", "billing", "monitoring", "notification"), True
        ),
    }


async def test_readyz_is_a_503_problem_naming_the_service_that_does_not_serve(anon, services):
    notification = services.health["notification"]
    await notification.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        r = await anon.get("/readyz")
    finally:
        await notification.set("", health_pb2.HealthCheckResponse.SERVING)
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "not serving: notification"
    assert r.json()["type"] == "https://gpufleet.dev/problems/service-unavailable"


async def test_request_id_is_echoed_and_forwarded(api, rec):
    r = await api.get("/v1/gpu-types", headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    assert rec.of("ListGpuTypes")[0].metadata["x-request-id"] == "req-123"


@pytest.mark.parametrize("given", [None, "bad id with spaces", "x" * 200])
async def test_a_missing_or_unsafe_request_id_is_replaced(anon, given):
    headers = {"X-Request-ID": given} if given else {}
    r = await anon.get("/healthz", headers=headers)
    echoed = r.headers["x-request-id"]
    assert echoed and echoed != given and len(echoed) == 32


async def test_the_callers_trace_continues_into_the_grpc_call(api, rec):
    telemetry.configure_tracing("gateway-tests")  # a recording provider, so the gateway makes its own span
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    r = await api.get("/v1/gpu-types", headers={"traceparent": traceparent})
    assert r.status_code == 200
    forwarded = rec.of("ListGpuTypes")[0].metadata["traceparent"]
    version, trace_id, span_id, _flags = forwarded.split("-")
    assert version == "00" and trace_id == TRACE_ID
    assert span_id != PARENT_SPAN  # the gateway's SERVER span is the parent of the gRPC call


async def test_authentication_is_cached_briefly(api, services):
    before = services.identity.authenticate_calls
    for _ in range(3):
        assert (await api.get("/v1/gpu-types")).status_code == 200
    assert services.identity.authenticate_calls - before <= 1
