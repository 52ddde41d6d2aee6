"""In-memory fakes of the agent's ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.agent.domain.model import (
    Assignment,
    AssignmentsUpdate,
    Distributed,
    GpuDevice,
    GpuReading,
    JobExit,
    Limits,
    LocalJob,
    RegisteredGpu,
    Registration,
    Report,
)
from services.agent.service_layer.ports import Unreachable

NOW = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


class MemoryStore:
    def __init__(self, reports: Sequence[Report] = ()) -> None:
        self.saved: list[Report] = list(reports)
        self.durable: list[Report] = list(reports)  # what the last sync() made durable
        self.saves = self.syncs = 0

    def load(self) -> list[Report]:
        return list(self.saved)

    def save(self, reports: Sequence[Report]) -> None:
        self.saved = list(reports)
        self.saves += 1

    def sync(self) -> None:
        self.durable = list(self.saved)
        self.syncs += 1


class FakeScheduler:
    """Streams what tests push with :meth:`push`; takes report batches (``outcomes`` per call: an
    exception to raise, a set of job ids to acknowledge, or None to acknowledge all)."""

    def __init__(self) -> None:
        self.assignments: list[Assignment] = []
        self.delivered: list[Report] = []
        self.batches: list[list[Report]] = []
        self.outcomes: list[Exception | set[str] | None] = []
        self.refused: set[str] = set()  # acknowledged but not applied (refused for good)
        self.watches: list[int] = []  # the known_revision of each watch
        self.streams: list[asyncio.Queue[AssignmentsUpdate | Exception | None]] = []
        self.revision = 0

    def push(self, assignments: Sequence[Assignment] | None = None) -> None:
        """Send the current (or given) list on every open stream, with the next revision."""
        if assignments is not None:
            self.assignments = list(assignments)
        self.revision += 1
        for q in self.streams:
            q.put_nowait(AssignmentsUpdate(self.revision, tuple(self.assignments)))

    def break_streams(self, error: Exception | None = None) -> None:
        for q in self.streams:
            q.put_nowait(error or Unreachable("scheduler: UNAVAILABLE: stream broke"))

    async def watch_assignments(self, node_id: str, known_revision: int) -> AsyncGenerator[AssignmentsUpdate]:
        self.watches.append(known_revision)
        q: asyncio.Queue[AssignmentsUpdate | Exception | None] = asyncio.Queue()
        self.streams.append(q)
        self.revision = max(self.revision, known_revision) + 1
        q.put_nowait(AssignmentsUpdate(self.revision, tuple(self.assignments)))
        try:
            while (item := await q.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.streams.remove(q)

    async def get_assignments(self, node_id: str) -> list[Assignment]:
        return list(self.assignments)

    async def send_batch(self, node_id: str, reports: Sequence[Report]) -> set[str]:
        self.batches.append(list(reports))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        acked = {r.job_id for r in reports} if outcome is None else outcome
        self.delivered.extend(r for r in reports if r.job_id in acked and r.job_id not in self.refused)
        return acked


class FakeFleet:
    def __init__(self, gpus: int = 2) -> None:
        self.gpus = gpus
        self.registrations = 0
        self.fail_first = 0
        self.capacity: tuple[int, int, dict[str, str]] | None = None

    async def register(
        self,
        hostname,
        provider,
        gpu_backend,
        driver_version,
        gpus,
        organization_id,
        is_spot,
        agent_version,
        *,
        cpu_cores: int = 0,
        ram_mb: int = 0,
        labels: Mapping[str, str] | None = None,
    ) -> Registration:
        self.capacity = (cpu_cores, ram_mb, dict(labels or {}))
        if self.fail_first:
            self.fail_first -= 1
            raise Unreachable("fleet: UNAVAILABLE")
        self.registrations += 1
        return Registration(
            node_id="00000000-0000-0000-0000-00000000000a",
            gpus=tuple(
                RegisteredGpu(i, f"00000000-0000-0000-0000-0000000000{i:02d}", "a100-80gb")
                for i in range(self.gpus)
            ),
            heartbeat_interval_seconds=5,
        )

    async def heartbeat(self, node_id, unhealthy_gpu_ids) -> bool:
        return True


class FakeHandle:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exit: asyncio.Future[JobExit] = asyncio.get_running_loop().create_future()
        self.terminated_with: float | None = None
        self.released = False
        self.notes: list[str] = []

    async def wait(self) -> JobExit:
        return await self.exit

    async def terminate(self, grace_seconds: float) -> None:
        self.terminated_with = grace_seconds
        if not self.exit.done():
            self.exit.set_result(JobExit(exit_code=143, output_tail="bye", signal_name="SIGTERM"))

    def release(self) -> None:
        self.released = True

    def annotate(self, line: str) -> None:
        self.notes.append(line)


@dataclass(frozen=True)
class Spawned:
    """What the agent asked the runner to start."""

    command: str
    gpu_indices: tuple[int, ...]
    organization_id: str | None
    limits: Limits | None
    distributed: Distributed | None
    attempt: int
    time_limit_seconds: int
    extra: dict = field(default_factory=dict)
    image: str = ""
    gpu_uuids: tuple[str, ...] = ()


class FakeRunner:
    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}
        self.refuse: dict[str, Exception] = {}
        self.left_running: list[tuple[LocalJob, FakeHandle]] = []  # what adopt() finds
        self.spawned: dict[str, Spawned] = {}

    def adopt(self) -> list[tuple[LocalJob, FakeHandle]]:
        return list(self.left_running)

    async def spawn(
        self,
        job_id: str,
        command: str,
        gpu_indices: Sequence[int],
        *,
        organization_id: str | None = None,
        limits: Limits | None = None,
        distributed: Distributed | None = None,
        attempt: int = 0,
        time_limit_seconds: int = 0,
        image: str = "",
        gpu_uuids: Sequence[str] = (),
    ) -> FakeHandle:
        if job_id in self.refuse:
            raise self.refuse[job_id]
        self.spawned[job_id] = Spawned(
            command,
            tuple(gpu_indices),
            organization_id,
            limits,
            distributed,
            attempt,
            time_limit_seconds,
            image=image,
            gpu_uuids=tuple(gpu_uuids),
        )
        self.handles[job_id] = FakeHandle(1000 + len(self.handles))
        return self.handles[job_id]


class FakeBackend:
    name = "simulated"
    real = False

    def __init__(self, count: int = 2) -> None:
        self.count = count
        self.busy_seen: list[frozenset[int]] = []

    def discover(self):
        return "sim", [GpuDevice(i, f"GPU-{i}", "Sim", 1000) for i in range(self.count)]

    def sample(self, busy: frozenset[int]) -> list[GpuReading]:
        self.busy_seen.append(busy)
        return [GpuReading(i, 50.0 if i in busy else 0.0, 10, 1000, 100.0, 40.0) for i in range(self.count)]

    def close(self) -> None:
        pass


class FakePublisher:
    def __init__(self) -> None:
        self.published = []
        self.fail = False

    async def publish(self, sample) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append(sample)

    async def close(self) -> None:
        pass
