"""The read side of allocation: which GPUs a live job holds now, as one organization may learn it.

The scheduler alone owns allocation: ``gpu_allocations`` gets a row in the same fenced transaction that
places a job and loses it in the one that ends the job, so this table (not the leader's in-memory
snapshot, which only the leader has) is the authoritative answer any replica can give.

What a tenant learns, and why (issue 8: "without telling one tenant another's activity"):

* A GPU of the shared pool that another organization's job holds shows as held, without its job: the
  shared pool's GPUs are visible to every tenant anyway, and a free-looking GPU that cannot be had would
  be a lie. It tells nothing of who holds it or for what.
* A GPU of a node dedicated to another organization is never listed (fleet never lists those nodes).
* The job id is given only for the caller's own jobs; for a key bound to a project, only for that
  project's jobs (another project's job holds its GPU as anonymously as another organization's: a
  bound key sees only its project's jobs everywhere else too). The read runs in the caller's tenant
  transaction, so row-level security hides other organizations' job rows: their job ids cannot come
  out of this query even if the SQL were wrong (the allocation row's own ``job_id`` is never selected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from shared.db import Database

# Bounds one request (a page of nodes is at most 200 of them; GPUs per node are few).
MAX_GPU_IDS = 10_000


@dataclass(frozen=True)
class HeldGpu:
    gpu_id: UUID
    job_id: UUID | None  # only when a job of the caller's organization (bound key: project) holds it
    mine: bool


class AllocationReader(Protocol):
    async def held_gpus(
        self, organization_id: UUID, gpu_ids: Sequence[UUID] | None, project_id: UUID | None = None
    ) -> list[HeldGpu]:
        """The GPUs held by live jobs that ``organization_id`` may know of (``gpu_ids``: only these);
        ``project_id`` (a bound key's project): the job id only for that project's jobs."""


_HELD = text(
    """
    SELECT a.gpu_id, j.id AS job_id
      FROM gpu_allocations a
      JOIN gpu_inventory i ON i.gpu_id = a.gpu_id
      LEFT JOIN jobs j ON j.id = a.job_id AND j.organization_id = :org
                      AND (CAST(:project AS uuid) IS NULL OR j.project_id = CAST(:project AS uuid))
     WHERE (i.organization_id IS NULL OR i.organization_id = :org)
       AND (CAST(:all_gpus AS boolean) OR a.gpu_id = ANY(:gpu_ids))
     ORDER BY a.gpu_id
    """
).bindparams(bindparam("gpu_ids", type_=ARRAY(PG_UUID(as_uuid=True))))


def held_gpu(gpu_id: UUID, own_job_id: UUID | None) -> HeldGpu:
    """A held GPU as the caller sees it: ``own_job_id`` is the holder when (and only when) it is one of
    the caller's own jobs, else None (another organization's job)."""
    return HeldGpu(gpu_id=gpu_id, job_id=own_job_id, mine=own_job_id is not None)


class SqlAllocationReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def held_gpus(
        self, organization_id: UUID, gpu_ids: Sequence[UUID] | None, project_id: UUID | None = None
    ) -> list[HeldGpu]:
        if gpu_ids is not None and not gpu_ids:
            return []
        async with self.db.transaction(org_id=organization_id) as session:
            rows = await session.execute(
                _HELD,
                {
                    "org": organization_id,
                    "project": project_id,
                    "all_gpus": gpu_ids is None,
                    "gpu_ids": list(gpu_ids or []),
                },
            )
            return [held_gpu(gpu_id, job_id) for gpu_id, job_id in rows]


# The operator's whole-fleet view (PolicyService/ListAllAllocations): every hold with its job and the
# job's organization. Only for the operator: it runs in the system scope, which row-level security lets
# see every organization's rows; the servicer requires the operator token before it gets here.
@dataclass(frozen=True)
class FleetHold:
    gpu_id: UUID
    node_id: UUID
    job_id: UUID
    organization_id: UUID


class FleetAllocationReader(Protocol):
    async def all_held_gpus(self) -> list[FleetHold]:
        """Every GPU a live job holds, of every organization (the operator's view)."""


_ALL_HELD = text(
    """
    SELECT a.gpu_id, a.node_id, a.job_id, j.organization_id
      FROM gpu_allocations a
      JOIN jobs j ON j.id = a.job_id
     ORDER BY a.node_id, a.gpu_id
    """
)


class SqlFleetAllocationReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all_held_gpus(self) -> list[FleetHold]:
        async with self.db.transaction(system=True) as session:
            rows = await session.execute(_ALL_HELD)
            return [FleetHold(gpu_id=g, node_id=n, job_id=j, organization_id=o) for g, n, j, o in rows]
