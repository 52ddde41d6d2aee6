"""The unit of work over PostgreSQL: one statement per batch of samples in (attributed from the
allocation history as they are inserted), one aggregate query out.

Ingestion and retention run with ``system=True``; utilization runs as the tenant (row-level security
hides other organizations' samples)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database

from ..domain.samples import GpuSample
from ..domain.series import SeriesWindow, UtilizationSeries
from ..domain.utilization import GpuUtilization
from ..service_layer.unit_of_work import MonitoringUnitOfWork, StoredSample, UnitOfWorkFactory
from .allocations import HOLDER, IN_PROJECT, SqlAllocations
from .series import utilization_series

# The sample's job and organization are the allocation history's (the hold covering it), never the
# agent's: the claimed ones are not even sent. RETURNING says what each new row was given.
_INSERT = text(
    f"""
    INSERT INTO gpu_metrics (gpu_id, timestamp, node_id, gpu_name, gpu_type, organization_id, job_id,
                             memory_used, memory_total, gpu_utilization, power_usage, temperature)
    SELECT s.gpu_id, s.ts, s.node_id, s.gpu_name, s.gpu_type, h.organization_id, h.job_id,
           s.mem_used, s.mem_total, s.util, s.power, s.temp
    FROM unnest(CAST(:gpu_id AS uuid[]), CAST(:ts AS timestamptz[]), CAST(:node_id AS uuid[]),
                CAST(:gpu_name AS text[]), CAST(:gpu_type AS text[]), CAST(:mem_used AS bigint[]),
                CAST(:mem_total AS bigint[]), CAST(:util AS numeric[]), CAST(:power AS numeric[]),
                CAST(:temp AS numeric[]))
         AS s(gpu_id, ts, node_id, gpu_name, gpu_type, mem_used, mem_total, util, power, temp)
    LEFT JOIN LATERAL ({HOLDER.format(gpu="s.gpu_id", node="s.node_id", ts="s.ts")}) h ON true
    ON CONFLICT (gpu_id, timestamp) DO NOTHING
    RETURNING gpu_id, timestamp, organization_id
    """
)

# {project}: empty, or IN_PROJECT for a project-bound key (two statements, each with its own plan).
_UTILIZATION_SQL = """
    SELECT gpu_id, max(gpu_name) AS gpu_name, max(gpu_type) AS gpu_type,
           avg(gpu_utilization)::float8 AS avg_util, max(gpu_utilization)::float8 AS max_util,
           avg(memory_used)::float8 AS avg_mem, count(*) AS samples,
           min(timestamp) AS first_at, max(timestamp) AS last_at
    FROM gpu_metrics m
    WHERE organization_id = :org AND timestamp >= now() - make_interval(hours => :hours)
      {project}
    GROUP BY gpu_id
    ORDER BY max(gpu_name), gpu_id
    """
_UTILIZATION = text(_UTILIZATION_SQL.format(project=""))
_UTILIZATION_IN_PROJECT = text(_UTILIZATION_SQL.format(project=IN_PROJECT))

_DELETE_OLDER = text("DELETE FROM gpu_metrics WHERE timestamp < now() - make_interval(hours => :h)")

COLUMNS = (
    "gpu_id",
    "ts",
    "node_id",
    "gpu_name",
    "gpu_type",
    "mem_used",
    "mem_total",
    "util",
    "power",
    "temp",
)


def sample_columns(samples: Sequence[GpuSample]) -> dict[str, list]:
    """Turn samples into one array per column (what ``unnest`` takes): a whole batch, one statement.

    Readings are rounded to the columns' two decimals here, so what is stored is what was compared."""
    cols: dict[str, list] = {k: [] for k in COLUMNS}
    for s in samples:
        cols["gpu_id"].append(str(s.gpu_id))
        cols["ts"].append(s.timestamp)
        cols["node_id"].append(str(s.node_id))
        cols["gpu_name"].append(s.gpu_name)
        cols["gpu_type"].append(s.gpu_type)
        cols["mem_used"].append(s.memory_used_mb)
        cols["mem_total"].append(s.memory_total_mb)
        cols["util"].append(round(s.gpu_utilization, 2))
        cols["power"].append(None if s.power_usage_w is None else round(s.power_usage_w, 2))
        cols["temp"].append(None if s.temperature_c is None else round(s.temperature_c, 2))
    return cols


class SqlUnitOfWork(MonitoringUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.allocations = SqlAllocations(session)

    async def add_samples(self, samples: Sequence[GpuSample]) -> list[StoredSample]:
        if not samples:
            return []
        rows = await self.session.execute(_INSERT, sample_columns(samples))
        return [StoredSample(r.gpu_id, r.timestamp, r.organization_id) for r in rows]

    async def utilization(
        self, organization_id: UUID, hours: int, project_id: UUID | None = None
    ) -> list[GpuUtilization]:
        """Seed 000's utilization query over the samples taken while the organization's jobs held the GPU
        (with ``project_id``, that project's jobs).

        RLS already limits a tenant transaction to that organization; the explicit filter says so to the
        planner too, which then uses the (organization_id, timestamp) index instead of scanning the
        window."""
        params: dict[str, object] = {"org": organization_id, "hours": hours}
        query = _UTILIZATION
        if project_id is not None:
            query, params["project"] = _UTILIZATION_IN_PROJECT, project_id
        rows = await self.session.execute(query, params)
        return [
            GpuUtilization(
                r.gpu_id,
                r.gpu_name,
                r.gpu_type,
                r.avg_util or 0.0,
                r.max_util or 0.0,
                r.avg_mem or 0.0,
                r.samples,
                r.first_at,
                r.last_at,
            )
            for r in rows
        ]

    async def utilization_series(
        self,
        organization_id: UUID,
        window: SeriesWindow,
        gpu_id: UUID | None,
        project_id: UUID | None = None,
    ) -> UtilizationSeries:
        return await utilization_series(self.session, organization_id, window, gpu_id, project_id)

    async def delete_samples_older_than(self, hours: int) -> int:
        # Served by the timestamp index.
        result = await self.session.execute(_DELETE_OLDER, {"h": hours})
        return int(getattr(result, "rowcount", 0) or 0)


def sql_unit_of_work(db: Database) -> UnitOfWorkFactory:
    return db.unit_of_work(SqlUnitOfWork)  # type: ignore[return-value]
