"""OpenTelemetry set-up and W3C trace-context propagation over REST, gRPC and Kafka headers.

No instrumentation packages are needed: the gateway middleware, the gRPC interceptors in
``shared.grpc`` and the outbox/consumer helpers call :func:`inject` / :func:`extract` themselves, so a
trace started by a REST call continues through gRPC, the outbox row, Kafka, and every consumer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

_configured = False


def configure_tracing(service: str, exporter: str = "none") -> None:
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"gpufleet-{service}"}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject() -> dict[str, str]:
    """The current trace context as carrier entries (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | Iterable[tuple[str, str | bytes]]) -> context.Context:
    if not isinstance(carrier, Mapping):
        carrier = {k.lower(): (v.decode() if isinstance(v, bytes | bytearray) else v) for k, v in carrier}
    return propagate.extract(dict(carrier))
