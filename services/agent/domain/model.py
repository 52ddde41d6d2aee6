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


def timed_out_message(limit_seconds: int) -> str:
    return f"timed out: the job ran past its time limit of {limit_seconds} s"


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
class Distributed:
    """This node's part of a job: its rank among the job's nodes and where the members meet.
    A single-node job is rank 0 of a world of one (its own master)."""

    rank: int = 0
    world_size: int = 1
    master_addr: str = ""
    master_port: int = 0
    node_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Optional resource limits of one job's cgroup (None: unlimited)."""

    cpus: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Assignment:
    """A job the scheduler placed on this node (scheduled: not yet started; running: reported started).

    ``time_limit_seconds`` 0: none. ``cpu_cores`` / ``ram_mb`` 0: no limit on the job's cgroup."""

    job_id: str
    command: str
    gpu_indices: tuple[int, ...]
    gpu_ids: tuple[str, ...] = ()
    organization_id: str | None = None
    status: str = SCHEDULED
    cancel_requested: bool = False
    attempt: int = 0
    time_limit_seconds: int = 0
    cpu_cores: int = 0
    ram_mb: int = 0
    distributed: Distributed = Distributed()
    image: str = ""  # a container image to run the command in; "": the host sandbox

    def limits(self) -> Limits:
        return Limits(cpus=self.cpu_cores or None, memory_mb=self.ram_mb or None)


@dataclass(frozen=True)
class AssignmentsUpdate:
    """The node's whole desired state at one revision (the scheduler pushes one per change)."""

    revision: int
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class LocalJob:
    """A job whose process this agent runs right now. ``stopping``: a stop was already ordered."""

    job_id: str
    gpu_indices: tuple[int, ...]
    organization_id: str | None = None
    stopping: bool = False
    attempt: int = 0
    time_limit_seconds: int = 0
    started_at: datetime | None = None  # when this agent (or its predecessor) started it


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    started_at: datetime
    attempt: int = 0  # the attempt started (0: not known)


@dataclass(frozen=True)
class JobFinished:
    """How a job ended. ``exit_code`` None: it never ran, or the agent cannot know (lost)."""

    job_id: str
    finished_at: datetime
    exit_code: int | None = None
    output_tail: str = ""
    cancelled: bool = False
    error_message: str = ""
    timed_out: bool = False  # ended by the agent at its time limit
    attempt: int = 0  # the attempt it ran (0: not known)


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
