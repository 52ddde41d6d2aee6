"""Job output as the shipper reads it: the supervisor's output file, and the output topic.

:class:`FileOutputSource` reads a job's ``output`` file (written by the job through its supervisor,
adapters/shim.py) with ``pread`` from a descriptor it holds, so the agent removing the job's folder
afterwards loses nothing. :class:`KafkaOutputPublisher` sends chunks through the agent's one Kafka
producer (the metrics publisher's), keyed by job id so each job's chunks stay in order.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from shared import telemetry
from shared.contracts import topics
from shared.contracts.output import JOB_OUTPUT_CHUNK, JobOutputChunkV1
from shared.events import Envelope
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

from ..service_layer.ports import JobHandle
from .metrics_publisher import KafkaMetricsPublisher
from .processes import ProcessJob
from .shim import OUTPUT


class FileOutputSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> bool:
        if self._fd is None:
            try:
                # Created if the supervisor has not yet (it appends to the same file, 0600 either way).
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return False
        return True

    def read(self, offset: int, limit: int) -> bytes:
        if not self.open():
            return b""
        assert self._fd is not None
        try:
            return os.pread(self._fd, limit, offset)
        except OSError:
            return b""

    def size(self) -> int:
        if self._fd is None:
            return 0
        with contextlib.suppress(OSError):
            return os.fstat(self._fd).st_size
        return 0

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def output_source(handle: JobHandle) -> FileOutputSource | None:
    """The output of a job the process runner runs; None for any other handle (nothing to ship)."""
    if isinstance(handle, ProcessJob):
        return FileOutputSource(handle.control / OUTPUT)
    return None


class KafkaOutputPublisher:
    def __init__(self, settings: KafkaSettings, kafka: KafkaMetricsPublisher, hostname: str) -> None:
        self._settings, self._kafka = settings, kafka
        self.source = f"gpufleet/agent/{hostname}"
        self._topic_ready = False

    async def publish(self, chunk: JobOutputChunkV1) -> None:
        if not self._topic_ready:
            await ensure_topics(self._settings, (topics.OUTPUT,))
            self._topic_ready = True
        job_id = str(chunk.job_id)
        envelope = Envelope(
            type=JOB_OUTPUT_CHUNK,
            source=self.source,
            data=chunk,
            subject=job_id,
            organization_id=str(chunk.organization_id),
        )
        try:
            await self._kafka.send_record(
                topics.OUTPUT,
                envelope.value(),
                key=job_id.encode(),
                headers=envelope.headers(telemetry.inject()),
                node_id=str(chunk.node_id or ""),
            )
        except Exception:
            self._topic_ready = False  # a broker that came back empty has lost the topic too
            raise
