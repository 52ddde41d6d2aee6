"""The utilization series in SQL: samples bucketed with ``date_bin`` (origin: the window's start), per
GPU and then across GPUs, in one statement. Nothing is averaged in Python."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.series import AggregatePoint, GpuSeries, SeriesPoint, SeriesWindow, UtilizationSeries
from .allocations import IN_PROJECT

# The explicit organization filter is the same rule GetUtilization applies (samples taken while the
# organization's jobs held the GPU); RLS enforces it too. The (organization_id, timestamp) index
# serves the window, the primary key (gpu_id, timestamp) a single GPU.
_SERIES_SQL = """
    WITH buckets AS (
        SELECT gpu_id, date_bin(:step, timestamp, :t0) AS bucket,
               max(gpu_name) AS gpu_name, max(gpu_type) AS gpu_type,
               avg(gpu_utilization) / 100 AS utilization, avg(memory_used) AS memory_used,
               count(*) AS samples
        FROM gpu_metrics m
        WHERE organization_id = :org AND timestamp >= :t0 AND timestamp < :t1
          AND (CAST(:gpu AS uuid) IS NULL OR gpu_id = CAST(:gpu AS uuid))
          {project}
        GROUP BY gpu_id, bucket
    )
    SELECT 'gpu' AS kind, gpu_id, max(gpu_name) OVER (PARTITION BY gpu_id) AS gpu_name,
           max(gpu_type) OVER (PARTITION BY gpu_id) AS gpu_type, bucket,
           round(utilization, 4)::float8 AS utilization, round(memory_used)::bigint AS memory_used,
           samples, 0 AS gpus
    FROM buckets
    UNION ALL
    SELECT 'all', NULL, NULL, NULL, bucket, round(avg(utilization), 4)::float8, NULL, sum(samples),
           count(*)
    FROM buckets GROUP BY bucket
    ORDER BY kind DESC, gpu_name, gpu_id, bucket
    """
_SERIES = text(_SERIES_SQL.format(project=""))
# A project-bound key: only the samples of its project's jobs (adapters/allocations.py, IN_PROJECT).
_SERIES_IN_PROJECT = text(_SERIES_SQL.format(project=IN_PROJECT))


def _assemble(window: SeriesWindow, rows: Sequence[Any]) -> UtilizationSeries:
    series: dict[UUID, GpuSeries] = {}
    aggregate: list[AggregatePoint] = []
    for r in rows:
        if r.kind == "all":
            aggregate.append(AggregatePoint(r.bucket, r.utilization or 0.0, int(r.gpus)))
            continue
        gpu = series.get(r.gpu_id)
        if gpu is None:
            gpu = series[r.gpu_id] = GpuSeries(r.gpu_id, r.gpu_name, r.gpu_type, [])
        gpu.points.append(
            SeriesPoint(r.bucket, r.utilization or 0.0, int(r.memory_used or 0), int(r.samples))
        )
    return UtilizationSeries(window, list(series.values()), aggregate)


async def utilization_series(
    session: AsyncSession,
    organization_id: UUID,
    window: SeriesWindow,
    gpu_id: UUID | None,
    project_id: UUID | None = None,
) -> UtilizationSeries:
    params: dict[str, object] = {
        "org": organization_id,
        "t0": window.start,
        "t1": window.end,
        "step": timedelta(seconds=window.step_seconds),
        "gpu": gpu_id,
    }
    query = _SERIES
    if project_id is not None:
        query, params["project"] = _SERIES_IN_PROJECT, project_id
    rows = (await session.execute(query, params)).all()
    return _assemble(window, rows)
