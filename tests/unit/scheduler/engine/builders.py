"""Small builders for engine tests: readable fleets and queues with stable ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.scheduler.domain.engine import (
    Allocation,
    CycleResult,
    Gpu,
    Node,
    NodeShare,
    Place,
    Policy,
    QueuedJob,
    Snapshot,
    cycle,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
A100 = "a100-80gb"
L40 = "l40s-48gb"
ORG_A = UUID(int=0xA0)
ORG_B = UUID(int=0xB0)
ORG_C = UUID(int=0xC0)
USER_1 = UUID(int=0x101)
USER_2 = UUID(int=0x102)


def node_id(n: int) -> UUID:
    return UUID(int=1_000_000 + n)


def job_id(n: int) -> UUID:
    return UUID(int=2_000_000 + n)


def gpu_id(node: int, index: int) -> UUID:
    return UUID(int=3_000_000 + node * 100 + index)


def node(
    n: int,
    gpus: int = 8,
    gpu_type: str = A100,
    memory: int = 81920,
    cpu: int = 64,
    ram: int = 512 * 1024,
    labels: Mapping[str, str] | None = None,
    dedicated_to: UUID | None = None,
    unhealthy: Iterable[int] = (),
    container_runtime: bool = False,
) -> Node:
    bad = set(unhealthy)
    return Node(
        node_id(n),
        tuple(Gpu(gpu_id(n, i), i, gpu_type, memory, i not in bad) for i in range(gpus)),
        cpu,
        ram,
        dict(labels or {}),
        dedicated_to,
        container_runtime=container_runtime,
    )


def job(
    n: int,
    org: UUID = ORG_A,
    user: UUID = USER_1,
    priority: int = 50,
    age: int = 0,
    gpus: int = 1,
    nodes: int = 1,
    memory: int = 0,
    gpu_type: str | None = None,
    cpu: int = 0,
    ram: int = 0,
    project: UUID | None = None,
    time_limit: int | None = None,
    held: bool = False,
    container: bool = False,
) -> QueuedJob:
    return QueuedJob(
        id=job_id(n),
        organization=org,
        user=user,
        created_at=T0 - timedelta(seconds=age + 1) + timedelta(microseconds=n),
        priority=priority,
        project=project,
        nodes=nodes,
        gpus_per_node=gpus,
        gpu_memory_mb=memory,
        gpu_type=gpu_type,
        cpu_cores=cpu,
        ram_mb=ram,
        time_limit_s=time_limit,
        held=held,
        container=container,
    )


def running(
    n: int,
    on_node: int,
    gpus: Iterable[int],
    org: UUID = ORG_A,
    user: UUID = USER_1,
    ends_in: int | None = None,
    gpu_type: str = A100,
    cpu: int = 0,
    ram: int = 0,
) -> Allocation:
    ids = tuple(gpu_id(on_node, i) for i in gpus)
    return Allocation(
        job_id(n),
        org,
        None,
        user,
        (NodeShare(node_id(on_node), ids, (gpu_type,) * len(ids), cpu, ram),),
        T0 - timedelta(hours=1),
        None if ends_in is None else T0 + timedelta(seconds=ends_in),
    )


def snapshot(
    nodes: Iterable[Node], jobs: Iterable[QueuedJob] = (), allocations: Iterable[Allocation] = ()
) -> Snapshot:
    snap = Snapshot()
    for nd in nodes:
        snap.update_node(nd)
    for a in allocations:
        snap.allocate(a)
    for j in jobs:
        snap.add_job(j)
    return snap


def run(snap: Snapshot, policy: Policy | None = None, now: datetime = T0) -> CycleResult:
    return cycle(snap, policy or Policy(), now)


def placed(result: CycleResult) -> dict[UUID, Place]:
    return {p.job_id: p for p in result.placements}


def placed_ns(result: CycleResult) -> set[int]:
    """The placed jobs as the small numbers they were built with."""
    return {p.job_id.int - 2_000_000 for p in result.placements}


def code(result: CycleResult, n: int) -> str | None:
    w = result.waiting(job_id(n))
    return None if w is None else w.reason.code
