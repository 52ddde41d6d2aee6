"""OpenTelemetry set-up and W3C trace-context propagation over REST, gRPC and Kafka headers.

The wire libraries are traced by OpenTelemetry's instrumentation packages: FastAPI (the gateway), gRPC
(server and client interceptors in ``shared.grpc``), asyncpg (:func:`instrument_database`, every
statement) and aiokafka (:func:`configure_tracing`), those two only when spans are exported. One thing stays ours: the outbox stores the W3C
context of the transaction that wrote each event (:func:`inject` in ``shared.outbox.record``) and the
relay publishes the row inside that context, so a relayed event stays in the trace of the request that
caused it, not of the relay. Consumers continue the producer's trace with :func:`extract`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, SamplingResult


class _RecordWhenExported(Sampler):
    """With nowhere to send spans, none is recorded: every instrumented statement, call and record
    still carries a valid W3C context (a caller's trace id goes on into gRPC metadata and Kafka headers),
    but no span is built, timed and thrown away (measured: 7-10% of a busy service's CPU). With an
    exporter (or :func:`record_spans`), spans are recorded, following the caller's sampling decision."""

    def __init__(self) -> None:
        self.recording = False
        self._on = ParentBased(ALWAYS_ON)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return (self._on if self.recording else ALWAYS_OFF).should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "RecordWhenExported"


_sampler = _RecordWhenExported()
_configured = False


def record_spans(on: bool = True) -> None:
    """Record spans although no exporter is configured (a test adding its own span processor)."""
    _sampler.recording = on


_db_instrumented = False


def configure_tracing(service: str, exporter: str = "none") -> None:
    global _configured
    if _configured:
        return
    _sampler.recording = exporter != "none"
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"gpufleet-{service}"}), sampler=_sampler
    )
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    if _sampler.recording:
        # Spans per statement and per record only where they go somewhere: neither passes a trace on
        # (the outbox row carries its request's ``traceparent`` into the record's headers, and consumers
        # continue it with :func:`extract`), so unexported they would be built and dropped per call.
        instrument_database()
        try:
            from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

            AIOKafkaInstrumentor().instrument(tracer_provider=provider)
        except Exception:  # an instrumentation that cannot patch must never stop a service
            logging.getLogger("gpufleet.telemetry").exception("aiokafka instrumentation failed")
    _configured = True


def recording() -> bool:
    """Whether spans are recorded (an exporter is configured, or :func:`record_spans`)."""
    return _sampler.recording


def instrument_database() -> None:
    """A span per SQL statement (asyncpg, under SQLAlchemy; no parameters recorded), children of the
    request's span. (OpenTelemetry's SQLAlchemy instrumentation does not support SQLAlchemy 2.1 yet.)

    Only where spans are recorded (an exporter is configured; :func:`configure_tracing` calls this
    then): a statement passes no trace context anywhere, so without an exporter its wrapper would only
    build a span that is thrown away (measured: about 5% of the scheduler's CPU under submits)."""
    global _db_instrumented
    if _db_instrumented or not _sampler.recording:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument()
    _db_instrumented = True


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
