"""Response bodies of the fleet views that merge fleet's inventory with the scheduler's allocations.

Fleet knows nodes, GPUs and their health; only the scheduler knows who holds a GPU. A GPU another
organization's job holds in the shared pool shows as allocated with no job (a free-looking GPU that
cannot be had would mislead); a node dedicated to another organization is never listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

NodeGpuStatus = Literal["free", "allocated", "offline"]
GpuHealth = Literal["healthy", "unhealthy", "draining", "offline"]


class NodeGpuOut(BaseModel):
    id: str
    uuid: str = Field(description="The vendor's UUID (NVML).")
    index: int = Field(description="Device index on its node.")
    gpu_type: str = Field(examples=["h100-80gb"])
    memory_mb: int
    health: GpuHealth = Field(
        description="Fleet's view: `healthy`, `unhealthy` (its agent says so), `draining` (administrative) "
        "or `offline` (its node is silent or no longer reports it)."
    )
    status: NodeGpuStatus = Field(
        description="`allocated`: a job holds it (the scheduler's answer); `free`: healthy and held by "
        "nobody; `offline`: held by nobody and not usable (see `health`)."
    )
    job_id: str | None = Field(
        description="The job holding it, only when it is one of the caller's organization's jobs; else null."
    )


class NodeOut(BaseModel):
    id: str
    hostname: str
    provider: str = Field(examples=["on-prem"])
    spot: bool
    status: str = Field(examples=["online"], description="online | offline")
    last_heartbeat_at: datetime | None
    cpu_cores: int = Field(description="Schedulable CPU cores its agent reported (0: not reported).")
    ram_mb: int = Field(description="Schedulable RAM its agent reported (0: not reported).")
    labels: dict[str, str] = Field(description="Fabric and placement labels, e.g. nvlink_domain, rack.")
    gpus: list[NodeGpuOut]


class NodeListOut(BaseModel):
    items: list[NodeOut]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null = no more.")
