"""The cycle's inputs: what the fleet has, who waits, who runs. Plain frozen values.

Identifiers are UUIDs, as everywhere in the product; the engine orders nodes by ``node_id.int`` (the
same order as the UUIDs themselves) so that ties break by id without comparing UUID objects in hot loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

Kind = tuple[str, int]
"""(gpu type, memory_mb): GPUs of one kind are interchangeable. One placement uses GPUs of one kind."""

JobKey = tuple[int, datetime, UUID]
"""Queue order inside an organization: priority high first (negated), then older first, then id."""

Pool = UUID | None
"""Whose nodes: None for the shared pool, else the organization a node is dedicated to."""

AccountPath = tuple[Any, ...]
"""A fair-share account: ("org", org), ("project", org, project) or ("user", org, project | None, user)."""


@dataclass(frozen=True, slots=True)
class Gpu:
    id: UUID
    index: int
    type: str
    memory_mb: int
    healthy: bool = True

    @property
    def kind(self) -> Kind:
        return (self.type, self.memory_mb)


@dataclass(frozen=True, slots=True)
class Node:
    id: UUID
    gpus: tuple[Gpu, ...]
    cpu_cores: int
    ram_mb: int
    labels: Mapping[str, str] = field(default_factory=dict)  # fabric: {"nvlink_domain": ..., "rack": ...}
    dedicated_to: UUID | None = None
    spot: bool = False  # carried for preemption-aware placement; the cycle treats spot nodes like others
    container_runtime: bool = False  # its agent runs jobs that name an image (a container runtime)


@dataclass(frozen=True, slots=True)
class Shape:
    """What a job asks of the fleet, whoever asks: jobs of one account with one shape form a class."""

    nodes: int
    gpus_per_node: int
    gpu_memory_mb: int
    gpu_type: str | None
    cpu_cores: int
    ram_mb: int
    container: bool = False  # names an image: only a node with a container runtime can run it

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(frozen=True, slots=True)
class QueuedJob:
    id: UUID
    organization: UUID
    user: UUID
    created_at: datetime
    priority: int = 50  # 0..100, orders jobs only inside their own account
    project: UUID | None = None
    nodes: int = 1
    gpus_per_node: int = 1
    gpu_memory_mb: int = 0  # per GPU; 0 = any
    gpu_type: str | None = None
    cpu_cores: int = 0  # per node
    ram_mb: int = 0  # per node
    time_limit_s: int | None = None
    held: bool = False
    attempt: int = 1
    preemptible: bool = True  # carried into its allocation once placed (False: never a victim)
    container: bool = False  # runs in a container image: placed on nodes with a container runtime only

    @property
    def shape(self) -> Shape:
        return Shape(
            self.nodes,
            self.gpus_per_node,
            self.gpu_memory_mb,
            self.gpu_type,
            self.cpu_cores,
            self.ram_mb,
            self.container,
        )

    @property
    def key(self) -> JobKey:
        return (-self.priority, self.created_at, self.id)

    @property
    def leaf(self) -> AccountPath:
        return user_path(self.organization, self.project, self.user)


@dataclass(frozen=True, slots=True)
class NodeShare:
    """The part of one running allocation on one node."""

    node_id: UUID
    gpu_ids: tuple[UUID, ...]
    gpu_types: tuple[str, ...]  # parallel to gpu_ids
    cpu_cores: int = 0
    ram_mb: int = 0


@dataclass(frozen=True, slots=True)
class Allocation:
    """A running (or just placed) job and what it holds."""

    job_id: UUID
    organization: UUID
    project: UUID | None
    user: UUID
    shares: tuple[NodeShare, ...]
    started_at: datetime
    ends_at: datetime | None = None  # started_at + time limit; None: no limit
    priority: int = 50  # orders victims when lent capacity is reclaimed (lowest first)
    preempted: bool = False  # asked to stop for a reclaim; its GPUs are free once it reported stopped
    preemptible: bool = True  # False: never a victim (the job opted out of requeue)

    @property
    def gpu_count(self) -> int:
        return sum(len(s.gpu_ids) for s in self.shares)


@dataclass(frozen=True, slots=True)
class Usage:
    """Decayed resource-seconds: GPU-seconds already weighed by GPU type, core-seconds, MB-seconds."""

    gpu_s: float = 0.0
    cpu_s: float = 0.0
    ram_mb_s: float = 0.0


def org_path(org: UUID) -> AccountPath:
    return ("org", org)


def project_path(org: UUID, project: UUID) -> AccountPath:
    return ("project", org, project)


def user_path(org: UUID, project: UUID | None, user: UUID) -> AccountPath:
    return ("user", org, project, user)


def account_chain(org: UUID, project: UUID | None, user: UUID) -> tuple[AccountPath, ...]:
    """The accounts a job's usage counts against, from the organization down. No project: the users
    sit directly under the organization."""
    if project is None:
        return (org_path(org), user_path(org, None, user))
    return (org_path(org), project_path(org, project), user_path(org, project, user))
