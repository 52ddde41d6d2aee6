"""The engine's view of the scheduler's records: jobs, allocations and the GPU projection turned into
the engine's plain values (``domain.engine.model``). Pure.

A node whose agent did not report CPU cores or RAM (0: older agents) is taken as unbounded in that
resource rather than as having none, so that a CPU or RAM request never makes every such node useless.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL
from shared.contracts.limits import MAX_CPU_CORES, MAX_RAM_MB

from .engine import Allocation, Gpu, Node, NodeShare, QueuedJob, Shape
from .inventory import InventoryGpu
from .model import Job

NO_USER = UUID(int=0)  # jobs submitted without a user (service keys) share one fair-share account


def shape_of(job: Job) -> Shape:
    return Shape(
        job.nodes,
        job.gpu_count,
        job.gpu_memory_mb,
        job.gpu_type,
        job.cpu_cores,
        job.ram_mb,
        job.image is not None,
    )


def queued_job(job: Job) -> QueuedJob:
    return QueuedJob(
        id=job.id,
        organization=job.organization_id,
        user=job.user_id or NO_USER,
        created_at=job.created_at,
        priority=job.priority,
        nodes=job.nodes,
        gpus_per_node=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type,
        cpu_cores=job.cpu_cores,
        ram_mb=job.ram_mb,
        time_limit_s=job.time_limit_seconds,
        held=job.held,
        attempt=job.attempt,
        project=job.project_id,
        preemptible=preemptible(job),
        container=job.image is not None,
    )


MAX_PREEMPTIONS = 3
"""A job stopped this many times to give capacity back runs to its end on its next placement: whatever
goes wrong in the reclaiming (a lender whose job still cannot start on what was freed), a borrower is
never kept from finishing (docs/policy.md)."""


def preemptible(job: Job) -> bool:
    """Whether the job may be stopped to give capacity back: not if it opted out of requeues, nor once
    it was stopped :data:`MAX_PREEMPTIONS` times."""
    return not job.no_requeue and job.preemptions < MAX_PREEMPTIONS


def allocation_of(job: Job) -> Allocation:
    """What an on-node job holds, per node (its allocation lists GPUs in rank order)."""
    types = {a.gpu_id: a.gpu_type for a in job.allocation}
    shares = tuple(
        NodeShare(
            p.node_id,
            p.gpu_ids,
            tuple(types.get(g, "") for g in p.gpu_ids),
            job.cpu_cores,
            job.ram_mb,
        )
        for p in job.placements
    )
    started = job.scheduled_at or job.created_at
    ends = None if job.time_limit_seconds is None else started + timedelta(seconds=job.time_limit_seconds)
    user = job.user_id or NO_USER
    return Allocation(
        job.id,
        job.organization_id,
        job.project_id,
        user,
        shares,
        started,
        ends,
        priority=job.priority,
        preempted=job.preempted_at is not None,
        preemptible=preemptible(job),
    )


def nodes_of(gpus: Iterable[InventoryGpu]) -> list[Node]:
    """One engine node per projected node. GPUs fleet does not offer (draining, unhealthy, offline)
    stay on their node as unhealthy: admission still counts them (they may come back)."""
    by_node: dict[UUID, list[InventoryGpu]] = defaultdict(list)
    for gpu in gpus:
        by_node[gpu.node_id].append(gpu)
    nodes = []
    for node_id, members in sorted(by_node.items(), key=lambda kv: kv[0].int):
        first = max(members, key=lambda g: g.revision)  # the latest word on the node's capacity
        nodes.append(
            Node(
                id=node_id,
                gpus=tuple(
                    Gpu(g.gpu_id, g.device_index, g.gpu_type, g.memory_total_mb, healthy=g.schedulable)
                    for g in sorted(members, key=lambda g: g.device_index)
                ),
                cpu_cores=first.node_cpu_cores or MAX_CPU_CORES,
                ram_mb=first.node_ram_mb or MAX_RAM_MB,
                labels=dict(first.node_labels),
                dedicated_to=first.organization_id,
                container_runtime=bool(first.node_labels.get(CONTAINER_RUNTIME_LABEL)),
            )
        )
    return nodes
