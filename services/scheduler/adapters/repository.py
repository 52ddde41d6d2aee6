"""The unit of work over PostgreSQL: one :class:`shared.db.Database` transaction per unit.

The repository owns the session; handlers get domain objects. Writing a job also writes its new
status-history entries and records its events in the outbox, so a change and its announcement commit
together. Tenant units run with ``org_id`` (row-level security hides other organizations' rows);
the scheduling loop, the agents' calls and the consumer run with ``system=True``.

A cycle's writes are batched: one executemany UPDATE for every job it changes, one multi-row INSERT
each for history, allocations and outbox rows, after :meth:`SqlUnitOfWork.hold_lease` has locked the
lease row and checked the fencing token. A submit batch and a batch of agent reports are written the
same way. The statements on those paths (and the leader's reads of changes) run on the session's own
asyncpg connection, inside the unit's transaction: the ORM's per-statement work cost more CPU than the
database did.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Table, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as shared_audit
from shared import consumers, outbox, telemetry
from shared.contracts import topics
from shared.contracts.audit import AuditRecordedV1
from shared.db import Database
from shared.events import Envelope

from ..domain.inventory import InventoryGpu
from ..domain.model import GpuAllocation, Job, JobPlacement, JobStatus, Pending, StatusChange
from ..service_layer.assignments import NodeVersion
from ..service_layer.unit_of_work import UsageRow
from . import events
from .orm import GpuInventoryRow, JobRow, JobStatusHistoryRow, SchedulerLeaseRow

JOBS: Table = JobRow.__table__  # type: ignore[attr-defined]
HISTORY: Table = JobStatusHistoryRow.__table__  # type: ignore[attr-defined]
INVENTORY: Table = GpuInventoryRow.__table__  # type: ignore[attr-defined]
LEASE: Table = SchedulerLeaseRow.__table__  # type: ignore[attr-defined]

ON_NODE = (JobStatus.SCHEDULED.value, JobStatus.RUNNING.value)
SCHEDULABLE = ("available", "allocated")  # fleet's 'allocated' mirrors our own allocations

# Before the first nextval() a sequence reports last_value 1 with is_called false: nothing was taken yet.
_JOB_WATERMARK = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM jobs_change_seq")
# xid8 as a number (a 64-bit transaction id with its epoch: it never wraps). NULL: a row last changed
# before migration 009, older than any read since.
_CHANGE_XID = "(change_xid::text::bigint)"
# Each also answers now() (the transaction's start: the same for every statement of the unit), so a
# unit that asks for the clock of record after one of them needs no round trip for it.
_SNAPSHOT_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now()"
_XACT_ID = "SELECT pg_current_xact_id()::text::bigint, now()"
# The scheduler's sync in one statement (one snapshot): the xmin the next read starts from, the clock,
# the inventory's change watermark (so an unchanged inventory costs no query of its own), and the
# changed jobs; a row with no job (``id`` NULL) when none changed.
_JOB_CHANGES = (
    "SELECT x.xmin, x.now, x.inventory_top, j.* FROM ("
    " SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, now() AS now,"
    " (SELECT coalesce(max(change_seq), 0) FROM gpu_inventory) AS inventory_top) AS x"
    f" LEFT JOIN LATERAL (SELECT {{columns}} FROM jobs WHERE change_seq > $1 AND {_CHANGE_XID} >= $2"
    f" AND {_CHANGE_XID} <> ALL($3::bigint[])) AS j ON true ORDER BY j.change_seq"
)
_HOLD_LEASE = (
    "UPDATE scheduler_lease SET expires_at = now() + make_interval(secs => $1) "
    "WHERE id = 1 AND holder = $2 AND token = $3 RETURNING pg_current_xact_id()::text::bigint, now()"
)


# The hot statements (a submit batch, a cycle's writes, a batch of agent reports, the leader's reads of
# changes) go to the session's own asyncpg connection, in its transaction: the same SQL, without the
# ORM's per-statement and per-row work, which cost more CPU than the database did. jsonb parameters are
# JSON text (the engine's jsonb codec on every connection); jsonb columns come back decoded.
_JOB_COLUMNS = ", ".join(c.name for c in JOBS.c)
_JOB_CHANGES_SQL = _JOB_CHANGES.format(columns=_JOB_COLUMNS)
_INSERT_COLUMNS = (
    "id",
    "organization_id",
    "user_id",
    "name",
    "command",
    "gpu_count",
    "gpu_memory_mb",
    "gpu_type",
    "webhook_url",
    "idempotency_key",
    "idempotency_fingerprint",
    "created_at",
    "nodes",
    "cpu_cores",
    "ram_mb",
    "time_limit_seconds",
    "no_requeue",
    "project_id",
    "image",
    "updated_at",
)
_JSON_COLUMNS = frozenset({"allocation", "placements"})
_RAW_HISTORY_INSERT = (
    "INSERT INTO job_status_history (job_id, organization_id, status, at, reason, attempt) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
_RAW_OUTBOX_INSERT = (
    f"INSERT INTO outbox ({', '.join(outbox.ROW_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(outbox.ROW_COLUMNS) + 1))})"
)


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
        "held": job.held,
        "priority": job.priority,
        "attempt": job.attempt,
        "node_ids": list(job.node_ids),
        "placements": [
            {
                "node_id": str(p.node_id),
                "rank": p.rank,
                "gpu_ids": [str(g) for g in p.gpu_ids],
                "address": p.address,
                "exited": p.exited,
            }
            for p in job.placements
        ],
        "pending_code": job.pending.code if job.pending else None,
        "pending_message": job.pending.message if job.pending else None,
        "estimated_start": job.estimated_start,
        "preempted_at": job.preempted_at,
        "preemptions": job.preemptions,
        "time_limit_warned_attempt": job.time_limit_warned,
    }


def _insert_values(job: Job, fingerprint: str | None) -> dict[str, Any]:
    return {
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
        "nodes": job.nodes,
        "cpu_cores": job.cpu_cores,
        "ram_mb": job.ram_mb,
        "time_limit_seconds": job.time_limit_seconds,
        "no_requeue": job.no_requeue,
        "project_id": job.project_id,
        "image": job.image,
        **_state(job),
    }


_STATE_COLUMNS = (
    "status",
    "node_id",
    "gpu_ids",
    "allocation",
    "exit_code",
    "output_tail",
    "error_message",
    "cancel_requested_at",
    "scheduled_at",
    "started_at",
    "finished_at",
    "held",
    "priority",
    "attempt",
    "node_ids",
    "placements",
    "pending_code",
    "pending_message",
    "estimated_start",
    "preempted_at",
    "preemptions",
    "time_limit_warned_attempt",
)


_RAW_SAVE = (
    "UPDATE jobs SET "
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(_STATE_COLUMNS, start=2))
    + ", updated_at = now() WHERE id = $1"
)
_ALL_INSERT_COLUMNS = _INSERT_COLUMNS + _STATE_COLUMNS  # the request's columns, then the state's
_RAW_INSERT = (
    f"INSERT INTO jobs ({', '.join(_ALL_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_ALL_INSERT_COLUMNS) + 1))})"
)


# A keyed batch's insert: a key a concurrent submit holds is skipped (add_keyed_jobs then takes it all back).
_RAW_INSERT_KEYED = f"{_RAW_INSERT} ON CONFLICT (organization_id, idempotency_key) DO NOTHING"


def _state_args(job: Job) -> list[Any]:
    state = _state(job)
    return [json.dumps(state[c]) if c in _JSON_COLUMNS else state[c] for c in _STATE_COLUMNS]


def _to_job(row: Any) -> Job:  # a RowMapping or an asyncpg Record
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
        nodes=row["nodes"],
        cpu_cores=row["cpu_cores"],
        ram_mb=row["ram_mb"],
        time_limit_seconds=row["time_limit_seconds"],
        held=row["held"],
        no_requeue=row["no_requeue"],
        attempt=row["attempt"],
        placements=tuple(
            JobPlacement(
                UUID(p["node_id"]),
                int(p["rank"]),
                tuple(UUID(g) for g in p["gpu_ids"]),
                p.get("address", ""),  # absent in placements recorded before addresses were
                bool(p.get("exited", False)),
            )
            for p in row["placements"] or []
        ),
        pending=Pending(row["pending_code"], row["pending_message"] or "") if row["pending_code"] else None,
        estimated_start=row["estimated_start"],
        project_id=row["project_id"],
        image=row["image"],
        preempted_at=row["preempted_at"],
        preemptions=row["preemptions"],
        time_limit_warned=row["time_limit_warned_attempt"],
    )


def _inventory(r: Any) -> InventoryGpu:
    return InventoryGpu(
        gpu_id=r.gpu_id,
        node_id=r.node_id,
        node_name=r.node_name,
        device_index=r.device_index,
        gpu_type=r.gpu_type,
        memory_total_mb=r.memory_total_mb,
        cost_per_hour=r.cost_per_hour,
        organization_id=r.organization_id,
        status=r.status,
        revision=r.revision,
        node_cpu_cores=r.node_cpu_cores,
        node_ram_mb=r.node_ram_mb,
        node_labels=dict(r.node_labels or {}),
    )


class SqlUnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._driver: Any = None
        self._now: datetime | None = None
        self._xid: int | None = None
        self._inventory_top: int | None = None  # the inventory's watermark, when a read of this unit saw it
        self.saved_jobs: set[UUID] = set()  # told to the factory's on_commit once the unit committed

    async def _pg(self) -> Any:
        """The asyncpg connection under this unit's session (its transaction is already open: the
        unit began with its scope statement)."""
        if self._driver is None:
            conn = await self.session.connection()
            self._driver = (await conn.get_raw_connection()).driver_connection
        return self._driver

    async def _jobs(self, where: str, *args: Any) -> list[Job]:
        rows = await (await self._pg()).fetch(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}", *args)
        return [_to_job(r) for r in rows]

    async def now(self) -> datetime:
        if self._now is None:
            self._now = await (await self._pg()).fetchval("SELECT now()")
        return self._now

    # --- jobs -------------------------------------------------------------------------------------

    async def add_job(self, job: Job, *, fingerprint: str | None = None) -> bool:
        values = _insert_values(job, fingerprint) | {"updated_at": func.now()}
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

    async def add_jobs(
        self, jobs: list[tuple[Job, str | None]], *, audit: Sequence[Envelope[AuditRecordedV1]] = ()
    ) -> None:
        """Insert new jobs without idempotency keys (nothing can conflict): one statement for all
        of them, their history and events batched the same way (the ``audit`` records in the
        events' statement). Their ``created_at`` is this transaction's time."""
        if not jobs:
            return
        rows = []
        for job, fp in jobs:
            values = _insert_values(job, fp) | {"updated_at": job.created_at}
            rows.append(
                [json.dumps(values[c]) if c in _JSON_COLUMNS else values[c] for c in _ALL_INSERT_COLUMNS]
            )
        await (await self._pg()).executemany(_RAW_INSERT, rows)
        await self._write_changes(*(job for job, _ in jobs), audit=audit)

    async def add_keyed_jobs(
        self, jobs: list[tuple[Job, str | None]], *, audit: Sequence[Envelope[AuditRecordedV1]] = ()
    ) -> bool:
        """:meth:`add_jobs` for jobs with idempotency keys: ON CONFLICT waits for a concurrent insert
        of the same key and then skips that row; if any was skipped, the savepoint takes back the
        rows this call did insert, so the batch is written whole or not at all."""
        if not jobs:
            return True
        pg = await self._pg()
        rows = []
        for job, fp in jobs:
            values = _insert_values(job, fp) | {"updated_at": job.created_at}
            rows.append(
                [json.dumps(values[c]) if c in _JSON_COLUMNS else values[c] for c in _ALL_INSERT_COLUMNS]
            )
        await pg.execute("SAVEPOINT keyed_jobs")
        await pg.executemany(_RAW_INSERT_KEYED, rows)
        # The ids are this call's own (fresh): a row with one of them is a row it inserted.
        inserted = await pg.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", [j.id for j, _ in jobs]
        )
        if inserted != len(jobs):
            await pg.execute("ROLLBACK TO SAVEPOINT keyed_jobs")
            return False
        await pg.execute("RELEASE SAVEPOINT keyed_jobs")
        await self._write_changes(*(job for job, _ in jobs), audit=audit)
        return True

    async def jobs_by_idempotency_keys(
        self, organization_id: UUID, keys: Sequence[str]
    ) -> dict[str, tuple[Job, str | None]]:
        if not keys:
            return {}
        pg = await self._pg()
        rows = await pg.fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE organization_id = $1 AND idempotency_key = ANY($2::text[])",
            organization_id,
            list(keys),
        )
        if not rows:
            return {}
        jobs = {r["id"]: _to_job(r) for r in rows}
        for h in await pg.fetch(
            "SELECT job_id, status, at, reason FROM job_status_history WHERE job_id = ANY($1::uuid[]) "
            "ORDER BY job_id, id",
            list(jobs),
        ):
            jobs[h["job_id"]].history.append(StatusChange(JobStatus(h["status"]), h["at"], h["reason"]))
        return {r["idempotency_key"]: (jobs[r["id"]], r["idempotency_fingerprint"]) for r in rows}

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

    async def job_versions(self, job_ids: list[UUID]) -> dict[UUID, datetime]:
        if not job_ids:
            return {}
        rows = await (await self._pg()).fetch(
            "SELECT id, updated_at FROM jobs WHERE id = ANY($1::uuid[])", job_ids
        )
        return {r[0]: r[1] for r in rows}

    async def node_versions(self, node_ids: list[UUID]) -> dict[UUID, NodeVersion]:
        if not node_ids:
            return {}
        rows = await (await self._pg()).fetch(
            "SELECT id, updated_at, node_ids FROM jobs WHERE node_ids && $1::uuid[] AND status = ANY($2::text[])",
            node_ids,
            list(ON_NODE),
        )
        found: dict[UUID, set[tuple[UUID, datetime | None]]] = {node: set() for node in node_ids}
        for job_id, updated_at, on in rows:
            for node in on:
                if node in found:
                    found[node].add((job_id, updated_at))
        return {node: frozenset(jobs) for node, jobs in found.items()}

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
        self,
        status: JobStatus | None,
        before: tuple[datetime, UUID] | None,
        limit: int,
        project_id: UUID | None = None,
    ) -> list[Job]:
        stmt = select(JOBS)
        if project_id is not None:
            stmt = stmt.where(JOBS.c.project_id == project_id)
        if status is not None:
            stmt = stmt.where(JOBS.c.status == status.value)
        if before is not None:
            stmt = stmt.where(tuple_(JOBS.c.created_at, JOBS.c.id) < tuple_(*before))
        stmt = stmt.order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc()).limit(limit)
        return [_to_job(r) for r in (await self.session.execute(stmt)).mappings()]

    async def record_audit(self, *envelopes: Envelope[AuditRecordedV1]) -> None:
        await shared_audit.write(self.session, *envelopes)  # in this unit's transaction (docs/audit.md)

    async def save_job(self, job: Job) -> None:
        await self.save_jobs([job])

    async def save_jobs(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        self.saved_jobs.update(j.id for j in jobs)
        await (await self._pg()).executemany(_RAW_SAVE, [[j.id, *_state_args(j)] for j in jobs])
        await self._write_changes(*jobs)

    async def _write_changes(self, *jobs: Job, audit: Sequence[Envelope[AuditRecordedV1]] = ()) -> None:
        pg = await self._pg()
        history = [
            (job.id, job.organization_id, h.status.value, h.at, h.reason, h.attempt)
            for job in jobs
            for h in job.new_history
        ]
        if history:
            await pg.executemany(_RAW_HISTORY_INSERT, history)
        trace = telemetry.inject()  # one trace context for the whole batch
        rows: list[tuple[Any, ...]] = []
        for job in jobs:
            rows.extend(outbox.row(topics.JOBS, events.envelope(c), str(job.id), trace) for c in job.events)
            job.new_history.clear()
            job.events.clear()
        # As shared.audit.write would add them (docs/audit.md), in the events' statement.
        rows.extend(outbox.row(topics.AUDIT, r, shared_audit.outbox_key(r), trace) for r in audit)
        if rows:
            await pg.executemany(_RAW_OUTBOX_INSERT, rows)
            self.session.info["outbox_dirty"] = True

    async def _with_history(self, job: Job) -> Job:
        rows = await self.session.execute(
            select(HISTORY.c.status, HISTORY.c.at, HISTORY.c.reason)
            .where(HISTORY.c.job_id == job.id)
            .order_by(HISTORY.c.id)
        )
        job.history = [StatusChange(JobStatus(r.status), r.at, r.reason) for r in rows]
        return job

    # --- leader lease -----------------------------------------------------------------------------

    async def take_lease(self, holder: str, ttl_s: float) -> int | None:
        # Taken when free or expired (a take-over: the token grows), or renewed when already ours.
        row = (
            await self.session.execute(
                text(
                    "UPDATE scheduler_lease SET "
                    " token = CASE WHEN holder = :h THEN token ELSE token + 1 END, "
                    " holder = :h, expires_at = now() + make_interval(secs => :ttl) "
                    "WHERE id = 1 AND (holder = :h OR expires_at <= now()) RETURNING token"
                ),
                {"h": holder, "ttl": ttl_s},
            )
        ).first()
        return None if row is None else int(row[0])

    async def hold_lease(self, holder: str, token: int, ttl_s: float) -> bool:
        # The UPDATE locks the row until this transaction ends: a take-over waits for it, and once a
        # take-over committed, holder or token differ here and nothing of this unit may commit.
        row = await (await self._pg()).fetchrow(_HOLD_LEASE, float(ttl_s), holder, token)
        if row is None:
            return False
        self._xid, self._now = int(row[0]), row[1]  # it wrote: the transaction has its id now
        return True

    async def give_up_lease(self, holder: str, token: int) -> None:
        await self.session.execute(
            text("UPDATE scheduler_lease SET expires_at = now() WHERE id = 1 AND holder = :h AND token = :t"),
            {"h": holder, "t": token},
        )

    # --- the leader's state ------------------------------------------------------------------------

    async def job_watermark(self) -> int:
        return int((await self.session.execute(_JOB_WATERMARK)).scalar_one())

    async def scheduling_jobs(self) -> tuple[list[Job], int]:
        """Queued and on-node jobs, and the snapshot xmin taken before reading them: every
        transaction below it had ended, so its changes are in this read."""
        unsettled = await self._snapshot_xmin()
        return await self._jobs("status = ANY($1::text[])", [JobStatus.QUEUED.value, *ON_NODE]), unsettled

    async def job_changes(self, unsettled: int, low: int, own: Sequence[int] = ()) -> tuple[list[Job], int]:
        """The changes (after change number ``low``) of transactions from ``unsettled`` on: those the
        previous read, whose snapshot xmin that was, may not have seen. A transaction below it had ended
        before that read began, so the read saw its changes. ``own``: the leader's cycle transactions,
        whose rows it applied itself (a row changed since by someone else carries their transaction)."""
        rows = await (await self._pg()).fetch(_JOB_CHANGES_SQL, low, unsettled, list(own))
        first = rows[0]  # the LEFT JOIN always gives one row at least
        self._now, self._inventory_top = first["now"], int(first["inventory_top"])
        jobs = [_to_job(r) for r in rows if r["id"] is not None]
        return jobs, int(first["xmin"])

    async def _snapshot_xmin(self) -> int:
        xmin, self._now = await (await self._pg()).fetchrow(_SNAPSHOT_XMIN)
        return int(xmin)

    async def transaction_id(self) -> int:
        if self._xid is None:
            self._xid, self._now = await (await self._pg()).fetchrow(_XACT_ID)
        return int(self._xid)

    async def inventory(self) -> tuple[list[InventoryGpu], int]:
        rows = (await self.session.execute(select(INVENTORY))).all()
        top = max((r.change_seq for r in rows), default=0)
        return [_inventory(r) for r in rows], int(top)

    async def inventory_changes(self, after: int) -> tuple[list[InventoryGpu], int]:
        """Every GPU of each node that changed since ``after`` (a node is re-indexed whole)."""
        if self._inventory_top is not None and self._inventory_top <= after:
            return [], after  # this unit's job_changes saw the watermark: nothing changed since
        changed = await (await self._pg()).fetch(
            "SELECT node_id, max(change_seq) FROM gpu_inventory WHERE change_seq > $1 GROUP BY node_id", after
        )
        if not changed:
            return [], after
        nodes = [r[0] for r in changed]
        rows = (await self.session.execute(select(INVENTORY).where(INVENTORY.c.node_id.in_(nodes)))).all()
        return [_inventory(r) for r in rows], int(max(r[1] for r in changed))

    async def inventory_version(self) -> int:
        return int(
            (
                await self.session.execute(select(func.coalesce(func.max(INVENTORY.c.change_seq), 0)))
            ).scalar_one()
        )

    async def usage(self, half_life_s: float, horizon_s: float) -> list[UsageRow]:
        """Decayed resource-seconds of finished runs per (organization, project, user, GPU type)."""
        rows = await self.session.execute(
            text(
                "SELECT organization_id, project_id, user_id, "
                " coalesce(allocation->0->>'gpu_type', '') AS gpu_type, "
                " sum(w * gpu_count * nodes) AS gpu_s, sum(w * cpu_cores * nodes) AS cpu_s, "
                " sum(w * ram_mb * nodes) AS ram_s "
                "FROM (SELECT *, extract(epoch FROM finished_at - scheduled_at) "
                "        * power(0.5, extract(epoch FROM now() - finished_at) / :hl) AS w "
                "      FROM jobs WHERE finished_at > now() - make_interval(secs => :horizon) "
                "        AND scheduled_at IS NOT NULL) j "
                "GROUP BY 1, 2, 3, 4"
            ),
            {"hl": half_life_s, "horizon": horizon_s},
        )
        return [
            UsageRow(
                r.organization_id,
                r.user_id,
                r.gpu_type or None,
                float(r.gpu_s),
                float(r.cpu_s),
                float(r.ram_s),
                r.project_id,
            )
            for r in rows
        ]

    # --- applying a cycle --------------------------------------------------------------------------

    async def placeable_jobs(self, job_ids: list[UUID]) -> list[Job]:
        """Those of ``job_ids`` still queued and not held, locked: a cancel or hold that committed
        after the cycle's snapshot wins, one that comes later waits and then sees the job placed."""
        if not job_ids:
            return []
        return await self._jobs(
            "id = ANY($1::uuid[]) AND status = 'queued' AND NOT held ORDER BY id FOR UPDATE", job_ids
        )

    async def running_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        """Running jobs among ``job_ids``, locked (in id order, as agents' report batches lock them):
        a finish or requeue in flight is waited for, and then the job is no longer running."""
        if not job_ids:
            return []
        return await self._jobs("id = ANY($1::uuid[]) AND status = 'running' ORDER BY id FOR UPDATE", job_ids)

    async def queued_jobs_by_id(self, job_ids: list[UUID]) -> list[Job]:
        """Queued jobs among ``job_ids``, locked; rows another transaction holds are skipped (their
        reason is written next cycle)."""
        if not job_ids:
            return []
        return await self._jobs("id = ANY($1::uuid[]) AND status = 'queued' FOR UPDATE SKIP LOCKED", job_ids)

    async def schedulable_gpus(self, gpu_ids: list[UUID]) -> set[UUID]:
        """Of ``gpu_ids``, those fleet still offers; share-locked so that an offline change waits for
        this unit and then sees the jobs it placed."""
        if not gpu_ids:
            return set()
        rows = await (await self._pg()).fetch(
            "SELECT gpu_id FROM gpu_inventory WHERE gpu_id = ANY($1::uuid[]) AND status = ANY($2::text[]) "
            "FOR SHARE",
            gpu_ids,
            list(SCHEDULABLE),
        )
        return {r[0] for r in rows}

    async def hold_gpus(self, jobs: list[Job]) -> None:
        rows = [
            (gid, job.id, p.node_id, job.scheduled_at)
            for job in jobs
            for p in job.placements
            for gid in p.gpu_ids
        ]
        if rows:
            await (await self._pg()).executemany(
                "INSERT INTO gpu_allocations (gpu_id, job_id, node_id, allocated_at) VALUES ($1, $2, $3, $4)",
                rows,
            )

    async def queue_positions(self, jobs: list[Job]) -> None:
        """Fill ``queue_position`` of the queued, not held jobs: 1 + how many of the same
        organization's waiting jobs come before each in queue order (priority, then age, then id)."""
        for job in jobs:
            if job.status is not JobStatus.QUEUED or job.held:
                continue
            ahead = (
                await self.session.execute(
                    select(func.count())
                    .select_from(JOBS)
                    .where(
                        JOBS.c.organization_id == job.organization_id,
                        JOBS.c.status == JobStatus.QUEUED.value,
                        ~JOBS.c.held,
                        tuple_(-JOBS.c.priority, JOBS.c.created_at, JOBS.c.id)
                        < tuple_(-job.priority, job.created_at, job.id),
                    )
                )
            ).scalar_one()
            job.queue_position = int(ahead) + 1

    async def release_gpus(self, *job_ids: UUID) -> None:
        if job_ids:
            await (await self._pg()).execute(
                "DELETE FROM gpu_allocations WHERE job_id = ANY($1::uuid[])", list(job_ids)
            )

    # --- agents -----------------------------------------------------------------------------------

    async def job_on_node(self, job_id: UUID, node_id: UUID) -> Job | None:
        found = await self._jobs("id = $1 AND $2 = ANY(node_ids) FOR UPDATE", job_id, node_id)
        return found[0] if found else None

    async def jobs_on_node(self, job_ids: list[UUID], node_id: UUID) -> list[Job]:
        """Those of ``job_ids`` placed on the node, locked for update (in id order: two batches that
        share jobs lock them in the same order)."""
        if not job_ids:
            return []
        return await self._jobs(
            "id = ANY($1::uuid[]) AND $2 = ANY(node_ids) ORDER BY id FOR UPDATE", job_ids, node_id
        )

    async def live_jobs_on_node(self, node_id: UUID) -> list[Job]:
        return await self._jobs(
            "node_ids @> ARRAY[$1::uuid] AND status IN ('scheduled', 'running') ORDER BY scheduled_at, id",
            node_id,
        )

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
            "node_cpu_cores": gpu.node_cpu_cores,
            "node_ram_mb": gpu.node_ram_mb,
            "node_labels": dict(gpu.node_labels),
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
    """Units of work over ``db``. ``on_commit``, when given, is told the ids of the jobs a unit saved,
    once its transaction committed (the WatchJob streams' wake-up; a failed unit tells nothing)."""

    def __init__(self, db: Database, on_commit: Callable[[set[UUID]], None] | None = None) -> None:
        self.db = db
        self._on_commit = on_commit

    @asynccontextmanager
    async def __call__(
        self, *, org_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[SqlUnitOfWork]:
        async with self.db.transaction(org_id=org_id, system=system) as session:
            unit = SqlUnitOfWork(session)
            yield unit
        if self._on_commit is not None and unit.saved_jobs:
            self._on_commit(unit.saved_jobs)
