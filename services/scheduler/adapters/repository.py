"""The unit of work over PostgreSQL: one :class:`shared.db.Database` transaction per unit.

The repository owns the session; handlers get domain objects. Writing a job also writes its new
status-history entries and records its events in the outbox, so a change and its announcement commit
together. Tenant units run with ``org_id`` (row-level security hides other organizations' rows);
the loop, the agents' calls and the consumer run with ``system=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Table, delete, exists, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import consumers, outbox
from shared.contracts import topics
from shared.db import Database

from ..domain.inventory import InventoryGpu
from ..domain.model import GpuAllocation, Job, JobStatus, StatusChange
from ..domain.placement import FreeGpu
from . import events
from .orm import GpuAllocationRow, GpuInventoryRow, JobRow, JobStatusHistoryRow

JOBS: Table = JobRow.__table__  # type: ignore[attr-defined]
HISTORY: Table = JobStatusHistoryRow.__table__  # type: ignore[attr-defined]
INVENTORY: Table = GpuInventoryRow.__table__  # type: ignore[attr-defined]
ALLOCATIONS: Table = GpuAllocationRow.__table__  # type: ignore[attr-defined]

LEADER_LOCK = "gpufleet-scheduler-round"
ON_NODE = (JobStatus.SCHEDULED.value, JobStatus.RUNNING.value)


def _allocation_json(job: Job) -> list[dict[str, Any]]:
    # Prices as strings: JSON numbers would go through float.
    return [
        {
            "gpu_id": str(a.gpu_id),
            "gpu_index": a.gpu_index,
            "gpu_type": a.gpu_type,
            "cost_per_hour": format(a.cost_per_hour, "f"),
        }
        for a in job.allocation
    ]


def _state(job: Job) -> dict[str, Any]:
    """The columns a transition can change."""
    return {
        "status": job.status.value,
        "node_id": job.node_id,
        "gpu_ids": list(job.gpu_ids),
        "allocation": _allocation_json(job),
        "exit_code": job.exit_code,
        "output_tail": job.output_tail,
        "error_message": job.error_message,
        "cancel_requested_at": job.cancel_requested_at,
        "scheduled_at": job.scheduled_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "updated_at": func.now(),
    }


def _to_job(row: Any) -> Job:  # a RowMapping
    return Job(
        id=row["id"],
        organization_id=row["organization_id"],
        user_id=row["user_id"],
        name=row["name"],
        command=row["command"],
        gpu_count=row["gpu_count"],
        gpu_memory_mb=row["gpu_memory_mb"],
        gpu_type=row["gpu_type"],
        priority=row["priority"],
        webhook_url=row["webhook_url"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        status=JobStatus(row["status"]),
        node_id=row["node_id"],
        allocation=tuple(
            GpuAllocation(
                gpu_id=UUID(a["gpu_id"]),
                gpu_index=int(a["gpu_index"]),
                gpu_type=a["gpu_type"],
                cost_per_hour=Decimal(a["cost_per_hour"]),
            )
            for a in row["allocation"] or []
        ),
        exit_code=row["exit_code"],
        output_tail=row["output_tail"],
        error_message=row["error_message"],
        cancel_requested_at=row["cancel_requested_at"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
    )


class SqlUnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def now(self) -> datetime:
        return (await self.session.execute(select(func.now()))).scalar_one()

    # --- jobs -------------------------------------------------------------------------------------

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        values = {
            "id": job.id,
            "organization_id": job.organization_id,
            "user_id": job.user_id,
            "name": job.name,
            "command": job.command,
            "gpu_count": job.gpu_count,
            "gpu_memory_mb": job.gpu_memory_mb,
            "gpu_type": job.gpu_type,
            "priority": job.priority,
            "webhook_url": job.webhook_url,
            "idempotency_key": job.idempotency_key,
            "idempotency_fingerprint": fingerprint,
            "created_at": job.created_at,
            **_state(job),
        }
        # ON CONFLICT waits for a concurrent insert of the same key and then does nothing, so the
        # caller can read the winner's job instead of failing on a unique violation.
        stmt = (
            insert(JOBS)
            .values(values)
            .on_conflict_do_nothing(index_elements=["organization_id", "idempotency_key"])
            .returning(JOBS.c.id)
        )
        if (await self.session.execute(stmt)).first() is None:
            return False
        await self._write_changes(job)
        return True

    async def job_by_idempotency_key(self, organization_id: UUID, key: str) -> tuple[Job, str | None] | None:
        row = (
            (
                await self.session.execute(
                    select(JOBS).where(
                        JOBS.c.organization_id == organization_id, JOBS.c.idempotency_key == key
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return await self._with_history(_to_job(row)), row["idempotency_fingerprint"]

    async def get_job(
        self, job_id: UUID, *, for_update: bool = False, with_history: bool = False
    ) -> Job | None:
        stmt = select(JOBS).where(JOBS.c.id == job_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).mappings().first()
        if row is None:
            return None
        job = _to_job(row)
        return await self._with_history(job) if with_history else job

    async def list_jobs(
        self, status: JobStatus | None, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Job]:
        stmt = select(JOBS)
        if status is not None:
            stmt = stmt.where(JOBS.c.status == status.value)
        if before is not None:
            stmt = stmt.where(tuple_(JOBS.c.created_at, JOBS.c.id) < tuple_(*before))
        stmt = stmt.order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc()).limit(limit)
        return [_to_job(r) for r in (await self.session.execute(stmt)).mappings()]

    async def save_job(self, job: Job) -> None:
        await self.session.execute(update(JOBS).where(JOBS.c.id == job.id).values(_state(job)))
        await self._write_changes(job)

    async def _write_changes(self, job: Job) -> None:
        if job.new_history:
            await self.session.execute(
                insert(HISTORY),
                [
                    {
                        "job_id": job.id,
                        "organization_id": job.organization_id,
                        "status": h.status.value,
                        "at": h.at,
                        "reason": h.reason,
                    }
                    for h in job.new_history
                ],
            )
        for change in job.events:
            await outbox.record(self.session, topics.JOBS, events.envelope(change), key=str(job.id))
        job.new_history.clear()
        job.events.clear()

    async def _with_history(self, job: Job) -> Job:
        rows = await self.session.execute(
            select(HISTORY.c.status, HISTORY.c.at, HISTORY.c.reason)
            .where(HISTORY.c.job_id == job.id)
            .order_by(HISTORY.c.id)
        )
        job.history = [StatusChange(JobStatus(r.status), r.at, r.reason) for r in rows]
        return job

    # --- placement --------------------------------------------------------------------------------

    async def lead_scheduling(self) -> bool:
        return bool(
            (
                await self.session.execute(
                    text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": LEADER_LOCK}
                )
            ).scalar()
        )

    async def queued_jobs(self, limit: int) -> list[Job]:
        stmt = (
            select(JOBS)
            .where(JOBS.c.status == JobStatus.QUEUED.value)
            .order_by(JOBS.c.priority.desc(), JOBS.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_to_job(r) for r in (await self.session.execute(stmt)).mappings()]

    async def free_gpus(self) -> list[FreeGpu]:
        held = exists().where(ALLOCATIONS.c.gpu_id == INVENTORY.c.gpu_id)
        rows = await self.session.execute(
            select(INVENTORY)
            .where(INVENTORY.c.status == "available", ~held)
            .order_by(INVENTORY.c.node_id, INVENTORY.c.device_index)
        )
        return [
            FreeGpu(
                gpu_id=r.gpu_id,
                node_id=r.node_id,
                device_index=r.device_index,
                gpu_type=r.gpu_type,
                memory_total_mb=r.memory_total_mb,
                cost_per_hour=r.cost_per_hour,
                organization_id=r.organization_id,
            )
            for r in rows
        ]

    async def hold_gpus(self, job: Job) -> None:
        await self.session.execute(
            insert(ALLOCATIONS),
            [
                {
                    "gpu_id": a.gpu_id,
                    "job_id": job.id,
                    "node_id": job.node_id,
                    "allocated_at": job.scheduled_at,
                }
                for a in job.allocation
            ],
        )

    async def release_gpus(self, job_id: UUID) -> None:
        await self.session.execute(delete(ALLOCATIONS).where(ALLOCATIONS.c.job_id == job_id))

    # --- agents -----------------------------------------------------------------------------------

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        row = (
            (
                await self.session.execute(
                    select(JOBS).where(JOBS.c.id == job_id, JOBS.c.node_id == node_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _to_job(row)

    async def live_jobs_on_node(self, node_id: UUID) -> list[Job]:
        rows = await self.session.execute(
            select(JOBS)
            .where(JOBS.c.node_id == node_id, JOBS.c.status.in_(ON_NODE))
            .order_by(JOBS.c.scheduled_at, JOBS.c.id)
        )
        return [_to_job(r) for r in rows.mappings()]

    # --- inventory --------------------------------------------------------------------------------

    async def upsert_gpu(self, gpu: InventoryGpu) -> bool:
        values = {
            "gpu_id": gpu.gpu_id,
            "node_id": gpu.node_id,
            "node_name": gpu.node_name,
            "device_index": gpu.device_index,
            "gpu_type": gpu.gpu_type,
            "memory_total_mb": gpu.memory_total_mb,
            "cost_per_hour": gpu.cost_per_hour,
            "organization_id": gpu.organization_id,
            "status": gpu.status,
            "revision": gpu.revision,
            "updated_at": func.now(),
        }
        base = insert(INVENTORY).values(values)
        upsert = base.on_conflict_do_update(
            index_elements=["gpu_id"],
            set_={k: base.excluded[k] for k in values if k != "gpu_id"},
            where=INVENTORY.c.revision < base.excluded.revision,
        ).returning(INVENTORY.c.gpu_id)
        return (await self.session.execute(upsert)).first() is not None

    async def claim(self, consumer: str, event_id: UUID) -> bool:
        return await consumers.claim(self.session, consumer, event_id)


class SqlUnitOfWorkFactory:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[SqlUnitOfWork]:
        async with self.db.transaction(org_id=org_id, system=system) as session:
            yield SqlUnitOfWork(session)
