"""Agent settings: ``GPUFLEET_AGENT_*`` plus the shared Kafka and agent-token pieces.

The GPU backend has no default on purpose: an agent on a GPU host that silently fell back to
simulated GPUs would sell GPUs that do not exist, so the operator must say which one it is.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator

from shared.settings import AgentTokenSettings, BaseServiceSettings, KafkaSettings


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


class AgentSettings(GpuBackendSettings, KafkaSettings, AgentTokenSettings):
    # Set: this node's GPUs serve only that organization; unset: the shared pool.
    agent_organization_id: UUID | None = None
    agent_provider: str = Field(default="on-prem", min_length=1)
    agent_is_spot: bool = False
    agent_state_dir: Path = Path(".state/agent")
    fleet_grpc_target: str = Field(min_length=1)
    scheduler_grpc_target: str = Field(min_length=1)
    agent_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    agent_metrics_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    agent_output_tail_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    agent_kill_grace_seconds: float = Field(default=10.0, ge=0, le=3600)

    @field_validator("agent_organization_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
