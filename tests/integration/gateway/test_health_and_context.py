"""Liveness, request ids and trace propagation (readiness: test_readiness.py)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry
from tests.integration.gateway import fakes

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
async def test_liveness_needs_no_key(anon, path):
    r = await anon.get(path)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_request_id_is_echoed_and_forwarded(api, rec):
    r = await api.get("/v1/gpu-types", headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    assert rec.of("ListGpuTypes")[0].metadata["x-request-id"] == "req-123"


@pytest.mark.parametrize("given", [None, "bad id with spaces", "x" * 200])
async def test_a_missing_or_unsafe_request_id_is_replaced(anon, given):
    headers = {"X-Request-ID": given} if given else {}
    r = await anon.get("/livez", headers=headers)
    echoed = r.headers["x-request-id"]
    assert echoed and echoed != given and len(echoed) == 32


async def test_the_callers_trace_continues_into_the_grpc_call(api, rec):
    telemetry.configure_tracing("gateway-tests")
    telemetry.record_spans()  # a recording provider, so the gateway makes its own span
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


async def test_each_request_has_exactly_one_server_span_named_by_its_route(api, rec):
    telemetry.configure_tracing("gateway-tests")
    telemetry.record_spans()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    r = await api.get(f"/v1/jobs/{fakes.JOB_ID}", headers={"traceparent": traceparent, "X-Request-ID": "r-1"})
    assert r.status_code == 200
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    # The fake services' own gRPC SERVER spans share the trace; the HTTP ones are named by the method.
    http_server = [s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("GET ")]
    assert len(http_server) == 1, [(s.name, s.kind, s.instrumentation_scope.name) for s in spans]
    [server] = http_server
    assert server.name == "GET /v1/jobs/{job_id}"
    assert server.parent is not None and server.parent.span_id == int(PARENT_SPAN, 16)
    assert server.attributes["http.route"] == "/v1/jobs/{job_id}"
    assert server.attributes["gpufleet.request_id"] == "r-1"
    # No per-message send/receive spans under it; the downstream call is its child.
    assert not [s for s in spans if s.name.startswith("GET /v1/jobs/{job_id} http")]
    forwarded = rec.of("GetJob")[0].metadata["traceparent"].split("-")
    assert forwarded[1] == TRACE_ID
