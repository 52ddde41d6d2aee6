"""Publishes GPU metric samples to ``gpufleet.metrics.v1`` as CloudEvents (binary mode), key = node id.

Every record this producer sends (samples, and job output through :meth:`send_record`) is signed with
the node's record key (shared.record_signing), so that consumers take it only as this node's.

Metrics are best effort: there is no outbox (the agent has no database) and no retry queue, because a
late sample is a wrong sample for a live dashboard. The producer is (re)started lazily, so an agent
that boots while the broker is down starts publishing once the broker is back.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from shared import telemetry
from shared.contracts import topics
from shared.contracts.metrics import GPU_METRICS_SAMPLED, GpuMetricsSampledV1
from shared.events import Envelope
from shared.kafka import ensure_topics, make_producer
from shared.record_signing import RecordSigner
from shared.settings import KafkaSettings

log = logging.getLogger("gpufleet.agent.metrics")

SEND_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


async def _stop(producer: AIOKafkaProducer) -> None:
    """Stop a producer without waiting on it for good: its stop flushes what it holds, which never ends
    while the broker is gone, and the metrics loop and the output shipper wait on this."""
    try:
        await asyncio.wait_for(producer.stop(), STOP_TIMEOUT)
    except Exception as exc:
        log.warning("the Kafka producer did not stop cleanly", extra={"error": repr(exc)})


class KafkaMetricsPublisher:
    def __init__(self, settings: KafkaSettings, hostname: str, signer: RecordSigner) -> None:
        self._settings = settings
        self._signer = signer
        self.source = f"gpufleet/agent/{hostname}"
        self._client_id = f"agent-{hostname}"
        self._producer: AIOKafkaProducer | None = None
        # Job output shares this producer (send_record): one start at a time, however many callers.
        self._starting = asyncio.Lock()

    async def _ready(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                await ensure_topics(self._settings, (topics.METRICS,))
                producer = make_producer(self._settings, self._client_id)
                try:
                    await producer.start()
                except Exception:
                    await _stop(producer)
                    raise
                self._producer = producer
                log.info("publishing GPU metrics", extra={"topic": topics.METRICS})
            return self._producer

    async def send_record(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]], node_id: str
    ) -> None:
        """One record on ``topic`` through this producer, signed as ``node_id``'s and acknowledged (the
        job output shipper's chunks); a failure restarts the producer, as a failed metrics publish does."""
        headers = self._signer.sign(node_id, topic, key, headers, value)
        producer = await self._ready()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, value, key=key, headers=headers), SEND_TIMEOUT
            )
        except Exception:
            current = self._producer is producer  # not already replaced by a failed metrics publish
            if current:
                self._producer = None
            await _stop(producer)
            raise

    async def publish(self, sample: GpuMetricsSampledV1) -> None:
        node_id = str(sample.node_id)
        envelope = Envelope(type=GPU_METRICS_SAMPLED, source=self.source, data=sample, subject=node_id)
        value, key = envelope.value(), node_id.encode()
        headers = self._signer.sign(node_id, topics.METRICS, key, envelope.headers(telemetry.inject()), value)
        producer = await self._ready()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topics.METRICS, value, key=key, headers=headers),
                SEND_TIMEOUT,
            )
        except Exception:
            # A producer that failed may be wedged (lost broker): start a fresh one next tick.
            self._producer = None
            await _stop(producer)
            raise

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _stop(producer)
