"""Value objects the agent reasons about. Ids are opaque strings here: the agent never interprets them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

SCHEDULED = "scheduled"
RUNNING = "running"

LOST_MESSAGE = "lost: the agent restarted while the job ran"
SUPERVISOR_LOST_MESSAGE = "lost: the job's supervisor process died"
ORPHANED_MESSAGE = "stopped: the scheduler no longer assigns this job to this node"
SHUTDOWN_MESSAGE = "stopped: the agent shut down while the job ran"


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as the backend found it (what registration reports to fleet)."""

    index: int
    uuid: str
    model: str
    memory_total_mb: int


@dataclass(frozen=True)
class GpuReading:
    """One sample of one GPU. ``error`` is set when the device could not be read (it is then unhealthy)."""

    index: int
    utilization: float
    memory_used_mb: int
    memory_total_mb: int
    power_w: float | None = None
    temperature_c: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RegisteredGpu:
    """What fleet calls one of our GPUs."""

    index: int
    gpu_id: str
    gpu_type: str
    name: str = ""


@dataclass(frozen=True)
class Registration:
    node_id: str
    gpus: tuple[RegisteredGpu, ...]
    heartbeat_interval_seconds: float


@dataclass(frozen=True)
class Assignment:
    """A job the scheduler placed on this node (scheduled: not yet started; running: reported started)."""

    job_id: str
    command: str
    gpu_indices: tuple[int, ...]
    gpu_ids: tuple[str, ...] = ()
    organization_id: str | None = None
    status: str = SCHEDULED
    cancel_requested: bool = False


@dataclass(frozen=True)
class LocalJob:
    """A job whose process this agent runs right now. ``stopping``: a stop was already ordered."""

    job_id: str
    gpu_indices: tuple[int, ...]
    organization_id: str | None = None
    stopping: bool = False


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    started_at: datetime


@dataclass(frozen=True)
class JobFinished:
    """How a job ended. ``exit_code`` None: it never ran, or the agent cannot know (lost)."""

    job_id: str
    finished_at: datetime
    exit_code: int | None = None
    output_tail: str = ""
    cancelled: bool = False
    error_message: str = ""


Report = JobStarted | JobFinished


@dataclass(frozen=True)
class JobExit:
    """What a finished process left behind (the runner's answer)."""

    exit_code: int | None
    output_tail: str
    # Set when a signal ended the process (exit_code then follows the shell's 128 + signal number).
    signal_name: str | None = None
    # When the last process of the job was gone (None: now); it may precede an agent restart.
    finished_at: datetime | None = None
    error: str = ""  # why there is no exit code (the sandbox failed, the supervisor died)


def gpu_holders(jobs: Iterable[LocalJob]) -> dict[int, LocalJob]:
    """Which local job holds each GPU index (a metric sample names the job and its organization)."""
    return {index: job for job in jobs for index in job.gpu_indices}
