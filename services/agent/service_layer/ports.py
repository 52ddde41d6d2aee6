"""What the control loop needs from the outside world. Adapters implement these; tests pass fakes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Protocol

from shared.contracts.metrics import GpuMetricsSampledV1

from ..domain.model import (
    Assignment,
    AssignmentsUpdate,
    Distributed,
    GpuDevice,
    GpuReading,
    JobExit,
    Limits,
    LocalJob,
    Registration,
    Report,
)


class GpuBackendError(RuntimeError):
    """The configured GPU backend cannot work on this host (fatal at start-up)."""


class Unreachable(RuntimeError):
    """A call to fleet or the scheduler did not get an answer (retry later)."""


class GpuBackend(Protocol):
    name: str  # "nvml" | "simulated": fleet records it at registration
    real: bool  # False: the GPUs do not exist (logged loudly)

    def discover(self) -> tuple[str, list[GpuDevice]]:
        """Initialise and list the GPUs: (driver version, devices). Raises GpuBackendError."""
        ...

    def sample(self, busy: frozenset[int]) -> list[GpuReading]:
        """Read every GPU now; ``busy`` names the indices a local job holds (the simulation uses it)."""
        ...

    def close(self) -> None: ...


class Fleet(Protocol):
    async def register(
        self,
        hostname: str,
        provider: str,
        gpu_backend: str,
        driver_version: str,
        gpus: Sequence[GpuDevice],
        organization_id: str | None,
        is_spot: bool,
        agent_version: str,
        *,
        cpu_cores: int = 0,
        ram_mb: int = 0,
        labels: Mapping[str, str] | None = None,
    ) -> Registration: ...

    async def heartbeat(self, node_id: str, unhealthy_gpu_ids: Sequence[str]) -> bool:
        """True when fleet knows the node; False means register again."""
        ...


class Scheduler(Protocol):
    def watch_assignments(self, node_id: str, known_revision: int) -> AsyncGenerator[AssignmentsUpdate]:
        """The node's assignments, now and after every change, until the stream ends (then watch again);
        raises Unreachable when the scheduler cannot be reached or the stream broke."""
        ...

    async def get_assignments(self, node_id: str) -> list[Assignment]: ...

    async def send_batch(self, node_id: str, reports: Sequence[Report]) -> set[str]:
        """Deliver reports in order; returns the job ids whose reports the scheduler is done with
        (applied, already applied or refused for good). Raises Unreachable (keep them all, retry)."""
        ...


class ReportStore(Protocol):
    """Durable list of reports not yet acknowledged (survives an agent restart)."""

    def load(self) -> list[Report]: ...

    def save(self, reports: Sequence[Report]) -> None: ...

    def sync(self) -> None:
        """Make every save so far durable (called in a worker thread, while saves go on)."""
        ...


class JobHandle(Protocol):
    pid: int

    async def wait(self) -> JobExit: ...

    async def terminate(self, grace_seconds: float) -> None:
        """SIGTERM every process of the job, SIGKILL them after the grace period."""
        ...

    def release(self) -> None:
        """Forget the ended job (its report is queued): free its folder, cgroup and uid."""
        ...

    def annotate(self, line: str) -> None:
        """Add a line from the agent to the job's output (e.g. its time limit is near)."""
        ...


class JobRunner(Protocol):
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
    ) -> JobHandle:
        """Start the command (in ``image`` when given; ``gpu_uuids`` by ``gpu_indices``' order); raises
        OSError (or ValueError: e.g. an image and no container runtime) when it cannot start."""
        ...

    def adopt(self) -> Sequence[tuple[LocalJob, JobHandle]]:
        """The jobs a previous agent process left running (or ended) under their supervisors."""
        ...


class MetricsPublisher(Protocol):
    async def publish(self, sample: GpuMetricsSampledV1) -> None:
        """Publish one node sample; raises on failure (the caller drops the sample)."""
        ...

    async def close(self) -> None: ...
