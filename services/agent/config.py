"""Agent settings: ``GPUFLEET_AGENT_*`` plus the shared Kafka pieces.

The agent's identity is its node credential in the state folder, got at the first registration in
exchange for ``GPUFLEET_AGENT_JOIN_TOKEN`` (created by an operator; docs/agent-identity.md). What the
node is (organization, provider, spot) comes from that token: the agent does not say.

The GPU backend has no default on purpose: an agent on a GPU host that silently fell back to
simulated GPUs would sell GPUs that do not exist, so the operator must say which one it is.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL
from shared.contracts.limits import MAX_CPU_CORES, MAX_RAM_MB
from shared.settings import BaseServiceSettings, KafkaSettings

# Fabric and placement labels (e.g. nvlink_domain, rack): the shape fleet accepts at registration.
LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{0,63}$")
MAX_LABELS = 32


def parse_labels(raw: str) -> dict[str, str]:
    """``nvlink_domain=a,rack=r1`` -> {"nvlink_domain": "a", "rack": "r1"}; ValueError names the bad part."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not LABEL_KEY.match(key):
            raise ValueError(f"{part!r} is not key=value with a key of letters, digits and . _ / -")
        if not LABEL_VALUE.match(value):
            raise ValueError(f"the value of {key!r} must be at most 63 letters, digits and . _ -")
        if key in labels:
            raise ValueError(f"{key!r} is given twice")
        if key == CONTAINER_RUNTIME_LABEL:
            raise ValueError(
                f"{key!r} is set by the agent from GPUFLEET_AGENT_CONTAINER_RUNTIME (when the runtime answers)"
            )
        labels[key] = value
    if len(labels) > MAX_LABELS - 1:  # the agent may add one of its own (CONTAINER_RUNTIME_LABEL)
        raise ValueError(f"at most {MAX_LABELS - 1} labels")
    return labels


class GpuBackendSettings(BaseServiceSettings):
    """What ``--probe`` needs: only the GPU backend (no fleet, scheduler, broker or token)."""

    agent_gpu_backend: Literal["nvml", "simulated"]
    agent_sim_gpu_count: int = Field(default=2, ge=1, le=64)
    agent_sim_gpu_model: str = Field(default="NVIDIA A100-SXM4-80GB", min_length=1)
    agent_sim_gpu_memory_mb: int = Field(default=81920, ge=1)
    agent_hostname: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)

    @field_validator("agent_hostname")
    @classmethod
    def _strip_hostname(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class AgentSettings(GpuBackendSettings, KafkaSettings):
    # A one-time join token from an operator, exchanged at the first registration for the node's
    # credential (kept in the state folder); not needed once the node has its credential.
    agent_join_token: SecretStr | None = None
    # How often the agent replaces its node credential (RotateNodeCredential); 0: never.
    agent_credential_rotate_seconds: float = Field(default=7 * 24 * 3600, ge=0)
    agent_state_dir: Path = Path(".state/agent")
    fleet_grpc_target: str = Field(min_length=1)
    scheduler_grpc_target: str = Field(min_length=1)
    # Only against a scheduler without WatchAssignments (older): how often it is asked instead.
    agent_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # The node's capacity as registration reports it; unset: what this host has (CPUs this process may
    # run on, MemTotal of /proc/meminfo).
    agent_cpu_cores: int | None = Field(default=None, ge=1, le=MAX_CPU_CORES)
    agent_ram_mb: int | None = Field(default=None, ge=1, le=MAX_RAM_MB)
    # Fabric and placement labels, e.g. "nvlink_domain=a,rack=r1" (gangs prefer nodes sharing one).
    agent_labels: str = ""
    agent_metrics_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    agent_output_tail_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    # The whole output of each job is shipped to monitoring (docs/job-output.md); off: only the tail.
    agent_output_shipping: bool = True
    # A finished job's output the broker would not take for this long is dropped (counted).
    agent_output_give_up_seconds: float = Field(default=300.0, ge=0, le=86400)
    agent_kill_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    # The job sandbox (services/agent/adapters/sandbox.py says what each setting guarantees).
    # Job folders; unset: /var/lib/gpufleet/jobs as root, else $XDG_RUNTIME_DIR (or the temp folder).
    agent_jobs_dir: Path | None = None
    # none: each job in its own network namespace with loopback only; host: the host's network.
    agent_job_network: Literal["none", "host"] = "none"
    agent_job_uid_first: int = Field(default=200_000, ge=1000, le=2**32 - 2)
    agent_job_uid_last: int = Field(default=265_535, ge=1000, le=2**32 - 2)
    agent_cgroup_parent: str = Field(default="gpufleet", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    agent_job_lang: str = Field(default="C.UTF-8", pattern=r"^[A-Za-z0-9_.@-]+$")
    # Jobs naming a container image run in it with this runtime (its client on PATH, with the NVIDIA
    # Container Toolkit for docker, CDI specs for podman); unset: such jobs fail, never run on the host.
    agent_container_runtime: Literal["docker", "podman"] | None = None
    # docker's/podman's --network for container jobs: none (default) reaches nothing, not even the
    # control plane; another network (e.g. bridge) is the operator's choice and firewall.
    agent_container_network: str = Field(default="none", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

    @model_validator(mode="after")
    def _sandbox_is_coherent(self) -> AgentSettings:
        if self.agent_job_uid_first > self.agent_job_uid_last:
            raise ValueError("agent_job_uid_first must not exceed agent_job_uid_last")
        if self.agent_jobs_dir is not None:
            jobs, state = self.agent_jobs_dir.absolute(), self.agent_state_dir.absolute()
            if jobs == state or state in jobs.parents or jobs in state.parents:
                raise ValueError("agent_jobs_dir must be outside agent_state_dir (jobs must not reach it)")
        return self

    @field_validator("agent_labels")
    @classmethod
    def _labels_parse(cls, value: str) -> str:
        parse_labels(value)
        return value

    @property
    def labels(self) -> dict[str, str]:
        return parse_labels(self.agent_labels)

    @field_validator("agent_container_runtime", mode="before")
    @classmethod
    def _blank_runtime_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator("agent_join_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
