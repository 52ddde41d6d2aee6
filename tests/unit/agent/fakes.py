"""In-memory fakes of the agent's ports."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from services.agent.domain.model import (
    Assignment,
    GpuDevice,
    GpuReading,
    JobExit,
    LocalJob,
    RegisteredGpu,
    Registration,
    Report,
)
from services.agent.service_layer.ports import ReportRejected, Unreachable

NOW = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


class MemoryStore:
    def __init__(self, reports: Sequence[Report] = ()) -> None:
        self.saved: list[Report] = list(reports)
        self.saves = 0

    def load(self) -> list[Report]:
        return list(self.saved)

    def save(self, reports: Sequence[Report]) -> None:
        self.saved = list(reports)
        self.saves += 1


class FakeScheduler:
    def __init__(self) -> None:
        self.assignments: list[Assignment] = []
        self.delivered: list[Report] = []
        self.outcomes: list[Exception | None] = []  # consumed per send; empty = accept

    async def get_assignments(self, node_id: str) -> list[Assignment]:
        return list(self.assignments)

    async def send(self, node_id: str, report: Report) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.delivered.append(report)


class FakeFleet:
    def __init__(self, gpus: int = 2) -> None:
        self.gpus = gpus
        self.registrations = 0
        self.fail_first = 0

    async def register(
        self, hostname, provider, gpu_backend, driver_version, gpus, organization_id, is_spot, agent_version
    ) -> Registration:
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

    async def wait(self) -> JobExit:
        return await self.exit

    async def terminate(self, grace_seconds: float) -> None:
        self.terminated_with = grace_seconds
        if not self.exit.done():
            self.exit.set_result(JobExit(exit_code=143, output_tail="bye", signal_name="SIGTERM"))

    def release(self) -> None:
        self.released = True


class FakeRunner:
    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}
        self.refuse: dict[str, Exception] = {}
        self.left_running: list[tuple[LocalJob, FakeHandle]] = []  # what adopt() finds

    def adopt(self) -> list[tuple[LocalJob, FakeHandle]]:
        return list(self.left_running)

    async def spawn(
        self, job_id: str, command: str, gpu_indices: Sequence[int], *, organization_id: str | None = None
    ) -> FakeHandle:
        if job_id in self.refuse:
            raise self.refuse[job_id]
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


def rejected() -> ReportRejected:
    return ReportRejected("FAILED_PRECONDITION: job is already final")
