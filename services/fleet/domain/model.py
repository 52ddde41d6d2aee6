"""Nodes and their GPUs: registration rules and the GPU status machine.

Status of a GPU (``gpu_resources.status``) is inventory and health only:

* ``available``: healthy and reported by its node.
* ``unhealthy``: its agent says so; ``offline``: its node stopped heart-beating or no longer reports it.
* ``draining``: administrative; survives restarts and health changes that would otherwise make it usable.

Allocation is the scheduler's alone: fleet keeps no copy of who holds a GPU (the scheduler answers
that, ``JobService/ListAllocations``, and the REST gateway merges the two views). Every status change
is published.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID, uuid4

from shared.contracts.limits import MAX_CPU_CORES, MAX_RAM_MB
from shared.errors import InvalidArgument

from .events import GpuEvent, GpuRegistered, GpuSnapshot, GpuStatusChanged

GpuStatus = Literal["available", "draining", "unhealthy", "offline"]
GPU_STATUSES: tuple[str, ...] = ("available", "draining", "unhealthy", "offline")
NodeStatus = Literal["online", "offline"]
NODE_STATUSES: tuple[str, ...] = ("online", "offline")
GPU_BACKENDS: tuple[str, ...] = ("nvml", "simulated")
DEFAULT_PROVIDER = "on-prem"
# Fabric and placement labels (nvlink_domain, rack, ...): what gangs prefer to share.
LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{0,63}$")
MAX_LABELS = 32


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"at most {MAX_LABELS} labels", field="labels")
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            raise InvalidArgument(
                f"label {key[:80]!r}: a key is 1-63 letters, digits and . _ / - (starting and ending with a "
                "letter or digit)",
                field="labels",
            )
        if not LABEL_VALUE.match(value):
            raise InvalidArgument(
                f"label {key!r}: a value is at most 63 letters, digits and . _ -", field="labels"
            )
    return dict(sorted(labels.items()))


@dataclass(frozen=True)
class ReportedGpu:
    """One GPU as an agent reports it."""

    index: int
    uuid: str
    model: str
    memory_total_mb: int


@dataclass(frozen=True)
class NodeRegistration:
    hostname: str
    provider: str
    gpu_backend: str
    driver_version: str | None
    agent_version: str | None
    organization_id: UUID | None
    is_spot: bool
    gpus: tuple[ReportedGpu, ...]
    cpu_cores: int = 0  # 0: not reported (an older agent)
    ram_mb: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    def validated(self) -> NodeRegistration:
        """The registration with whitespace trimmed and defaults filled, or :class:`InvalidArgument`."""
        hostname = self.hostname.strip()
        if not hostname:
            raise InvalidArgument("hostname is required", field="hostname")
        if len(hostname) > 253:
            raise InvalidArgument("hostname is longer than 253 characters", field="hostname")
        if self.gpu_backend not in GPU_BACKENDS:
            raise InvalidArgument(
                f"gpu_backend must be one of {', '.join(GPU_BACKENDS)}", field="gpu_backend"
            )
        if not self.gpus:
            raise InvalidArgument("a node must report at least one GPU", field="gpus")
        if not 0 <= self.cpu_cores <= MAX_CPU_CORES:
            raise InvalidArgument(f"cpu_cores must be between 0 and {MAX_CPU_CORES}", field="cpu_cores")
        if not 0 <= self.ram_mb <= MAX_RAM_MB:
            raise InvalidArgument(f"ram_mb must be between 0 and {MAX_RAM_MB}", field="ram_mb")
        labels = check_labels(self.labels)
        seen_index: set[int] = set()
        seen_uuid: set[str] = set()
        gpus = []
        for n, gpu in enumerate(self.gpus):
            where = f"gpus[{n}]"
            uuid = gpu.uuid.strip()
            if gpu.index < 0:
                raise InvalidArgument(f"{where}.index must not be negative", field=f"{where}.index")
            if gpu.index in seen_index:
                raise InvalidArgument(f"{where}.index {gpu.index} is reported twice", field=f"{where}.index")
            if not uuid:
                raise InvalidArgument(f"{where}.uuid is required", field=f"{where}.uuid")
            if uuid in seen_uuid:
                raise InvalidArgument(f"{where}.uuid is reported twice", field=f"{where}.uuid")
            if gpu.memory_total_mb <= 0:
                raise InvalidArgument(
                    f"{where}.memory_total_mb must be positive", field=f"{where}.memory_total_mb"
                )
            seen_index.add(gpu.index)
            seen_uuid.add(uuid)
            gpus.append(replace(gpu, uuid=uuid, model=gpu.model.strip()))
        return replace(
            self,
            hostname=hostname,
            provider=self.provider.strip() or DEFAULT_PROVIDER,
            driver_version=(self.driver_version or "").strip() or None,
            agent_version=(self.agent_version or "").strip() or None,
            gpus=tuple(gpus),
            labels=labels,
        )


def gpu_name(hostname: str, index: int) -> str:
    return f"{hostname}-gpu{index}"


@dataclass
class Node:
    id: UUID
    hostname: str
    provider: str
    gpu_backend: str
    driver_version: str | None
    agent_version: str | None
    organization_id: UUID | None
    is_spot: bool
    status: NodeStatus
    last_heartbeat: datetime
    cpu_cores: int = 0
    ram_mb: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    # When it first registered (None until stored): the order nodes are listed and paged in.
    registered_at: datetime | None = None
    # Labels its join token fixed (they win over the agent's); set: an operator decommissioned it.
    fixed_labels: dict[str, str] = field(default_factory=dict)
    decommissioned_at: datetime | None = None

    @classmethod
    def register(cls, reg: NodeRegistration, now: datetime, existing: Node | None) -> Node:
        """The node after (re-)registering: same id for the same hostname, online, heard from now."""
        return cls(
            id=existing.id if existing else uuid4(),
            hostname=reg.hostname,
            provider=reg.provider,
            gpu_backend=reg.gpu_backend,
            driver_version=reg.driver_version,
            agent_version=reg.agent_version,
            organization_id=reg.organization_id,
            is_spot=reg.is_spot,
            status="online",
            last_heartbeat=now,
            cpu_cores=reg.cpu_cores,
            ram_mb=reg.ram_mb,
            labels=dict(reg.labels),
            registered_at=existing.registered_at if existing else None,
            fixed_labels=dict(existing.fixed_labels) if existing else {},
        )


@dataclass
class Gpu:
    id: UUID
    node_id: UUID
    node_name: str
    index: int
    uuid: str
    name: str
    gpu_type: str
    memory_total_mb: int
    cost_per_hour: Decimal
    provider: str
    is_spot: bool
    organization_id: UUID | None
    status: GpuStatus = "available"
    revision: int = 0
    # False once its node re-registered without it (card removed or not enumerated): it stays offline
    # until reported again, whatever the node's heartbeats say.
    reported: bool = True
    last_active: datetime | None = None
    # Its node's capacity and labels (published with the GPU: the scheduler places by node).
    node_cpu_cores: int = 0
    node_ram_mb: int = 0
    node_labels: dict[str, str] = field(default_factory=dict)
    events: list[GpuEvent] = field(default_factory=list, compare=False, repr=False)

    # -- inventory -------------------------------------------------------------------------------

    def _inventory(self) -> tuple:
        return (
            self.node_id,
            self.node_name,
            self.index,
            self.name,
            self.gpu_type,
            self.memory_total_mb,
            self.cost_per_hour,
            self.provider,
            self.is_spot,
            self.organization_id,
            self.status,
            self.node_cpu_cores,
            self.node_ram_mb,
            tuple(sorted(self.node_labels.items())),
        )

    @classmethod
    def register(
        cls,
        node: Node,
        reported: ReportedGpu,
        gpu_type: str,
        cost_per_hour: Decimal,
        now: datetime,
        existing: Gpu | None,
    ) -> Gpu:
        """A GPU after its node (re-)registered. It keeps its id (found by vendor uuid); it becomes
        available again unless an operator drains it. Records ``GpuRegistered`` when it is new or
        anything others know about it changed."""
        gpu = existing or cls(
            id=uuid4(),
            node_id=node.id,
            node_name=node.hostname,
            index=reported.index,
            uuid=reported.uuid,
            name="",
            gpu_type=gpu_type,
            memory_total_mb=reported.memory_total_mb,
            cost_per_hour=cost_per_hour,
            provider=node.provider,
            is_spot=node.is_spot,
            organization_id=node.organization_id,
        )
        before = None if existing is None else existing._inventory()
        gpu.node_id, gpu.node_name, gpu.index = node.id, node.hostname, reported.index
        gpu.name = gpu_name(node.hostname, reported.index)
        gpu.gpu_type, gpu.cost_per_hour, gpu.memory_total_mb = (
            gpu_type,
            cost_per_hour,
            reported.memory_total_mb,
        )
        gpu.provider, gpu.is_spot, gpu.organization_id = node.provider, node.is_spot, node.organization_id
        gpu.node_cpu_cores, gpu.node_ram_mb, gpu.node_labels = node.cpu_cores, node.ram_mb, dict(node.labels)
        if gpu.status in ("unhealthy", "offline"):
            gpu.status = "available"
        gpu.reported = True
        gpu.last_active = now
        if before != gpu._inventory():
            gpu._record(GpuRegistered, now, "registered" if existing is None else "node re-registered")
        return gpu

    # -- health ----------------------------------------------------------------------------------

    def apply_health_report(self, unhealthy: bool, now: datetime) -> bool:
        """Its node is alive and says whether this GPU is healthy; True when the status changed.

        The report is the whole truth: a GPU not reported unhealthy is healthy again, and an offline
        GPU of a live node is back, except a card the node stopped reporting at registration."""
        if not self.reported:
            return False
        if unhealthy:
            if self.status == "unhealthy":
                return False
            return self._change_status("unhealthy", now, "reported unhealthy by its agent")
        if self.status not in ("unhealthy", "offline"):
            return False
        reason = "node back online" if self.status == "offline" else "reported healthy by its agent"
        return self._change_status("available", now, reason)

    def mark_offline(self, now: datetime, reason: str) -> bool:
        if self.status == "offline":
            return False
        return self._change_status("offline", now, reason)

    def detach(self, now: datetime) -> bool:
        """Its node re-registered without it."""
        was_reported, self.reported = self.reported, False
        return self.mark_offline(now, "no longer reported by its node") or was_reported

    def _change_status(self, status: GpuStatus, now: datetime, reason: str) -> bool:
        changed = status != self.status
        self.status = status
        if changed:
            self._record(GpuStatusChanged, now, reason)
        return changed

    # -- events ----------------------------------------------------------------------------------

    def _record(self, kind: type[GpuRegistered] | type[GpuStatusChanged], now: datetime, reason: str) -> None:
        self.revision += 1
        self.events.append(kind(self.snapshot(now), reason))

    def snapshot(self, now: datetime) -> GpuSnapshot:
        return GpuSnapshot(
            gpu_id=self.id,
            node_id=self.node_id,
            node_name=self.node_name,
            index=self.index,
            uuid=self.uuid,
            name=self.name,
            gpu_type=self.gpu_type,
            memory_total_mb=self.memory_total_mb,
            cost_per_hour=self.cost_per_hour,
            provider=self.provider,
            is_spot=self.is_spot,
            organization_id=self.organization_id,
            status=self.status,
            revision=self.revision,
            changed_at=now,
            node_cpu_cores=self.node_cpu_cores,
            node_ram_mb=self.node_ram_mb,
            node_labels=dict(self.node_labels),
        )

    def pull_events(self) -> list[GpuEvent]:
        out, self.events = self.events, []
        return out
