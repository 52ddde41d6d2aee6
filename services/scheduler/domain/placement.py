"""Placement: which queued jobs go onto which free GPUs in one scheduling round. Pure and deterministic.

Rules:

* A job needs ``gpu_count`` GPUs on ONE node (``CUDA_VISIBLE_DEVICES`` is per host), all or nothing.
* A GPU fits a job when its memory is at least the job's per-GPU ``gpu_memory_mb``, its type matches
  the job's ``gpu_type`` (when given), and the job's organization may use it (shared pool, or the
  organization's own dedicated capacity).
* Best fit: on each node take the ``gpu_count`` fitting GPUs with the least memory; among nodes choose
  the one that wastes the least memory in total, then the one left with the fewest free GPUs (pack
  nodes, keep whole nodes free for big jobs), then the lowest node id (determinism).
* Jobs are tried by priority (high first), then age (old first). A job that does not fit is skipped for
  this round and later jobs may still be placed (greedy backfill). The price of that is starvation: a
  big job can wait as long as smaller jobs keep taking the GPUs it would need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True)
class FreeGpu:
    gpu_id: UUID
    node_id: UUID
    device_index: int
    gpu_type: str
    memory_total_mb: int
    cost_per_hour: Decimal
    organization_id: UUID | None  # None: shared pool


@dataclass(frozen=True)
class JobRequest:
    job_id: UUID
    organization_id: UUID
    gpu_count: int
    gpu_memory_mb: int
    gpu_type: str | None
    priority: int
    created_at: datetime


@dataclass(frozen=True)
class Placement:
    job_id: UUID
    node_id: UUID
    gpus: tuple[FreeGpu, ...]  # in device-index order


def fits(job: JobRequest, gpu: FreeGpu) -> bool:
    return (
        gpu.memory_total_mb >= job.gpu_memory_mb
        and (job.gpu_type is None or gpu.gpu_type == job.gpu_type)
        and (gpu.organization_id is None or gpu.organization_id == job.organization_id)
    )


def queue_order(jobs: Iterable[JobRequest]) -> list[JobRequest]:
    """Priority DESC, created_at ASC; the job id breaks exact ties so a round is reproducible."""
    return sorted(jobs, key=lambda j: (-j.priority, j.created_at, j.job_id))


def best_fit(job: JobRequest, free_by_node: dict[UUID, list[FreeGpu]]) -> Placement | None:
    best: tuple[tuple[int, int, UUID], Placement] | None = None
    for node_id, gpus in free_by_node.items():
        candidates = [g for g in gpus if fits(job, g)]
        if len(candidates) < job.gpu_count:
            continue
        chosen = sorted(candidates, key=lambda g: (g.memory_total_mb, g.device_index, g.gpu_id))[
            : job.gpu_count
        ]
        leftover = sum(g.memory_total_mb - job.gpu_memory_mb for g in chosen)
        rank = (leftover, len(gpus) - job.gpu_count, node_id)
        if best is None or rank < best[0]:
            ordered = tuple(sorted(chosen, key=lambda g: (g.device_index, g.gpu_id)))
            best = (rank, Placement(job.job_id, node_id, ordered))
    return best[1] if best else None


def place(jobs: Sequence[JobRequest], free_gpus: Iterable[FreeGpu]) -> list[Placement]:
    """Place as many jobs as fit, in queue order; no GPU is handed out twice."""
    free_by_node: dict[UUID, list[FreeGpu]] = defaultdict(list)
    seen: set[UUID] = set()
    for gpu in free_gpus:
        if gpu.gpu_id not in seen:  # a duplicate in the input must not become a double booking
            seen.add(gpu.gpu_id)
            free_by_node[gpu.node_id].append(gpu)
    placements: list[Placement] = []
    for job in queue_order(jobs):
        if job.gpu_count < 1:
            continue
        placement = best_fit(job, free_by_node)
        if placement is None:
            continue
        placements.append(placement)
        taken = {g.gpu_id for g in placement.gpus}
        remaining = [g for g in free_by_node[placement.node_id] if g.gpu_id not in taken]
        if remaining:
            free_by_node[placement.node_id] = remaining
        else:
            del free_by_node[placement.node_id]
    return placements
