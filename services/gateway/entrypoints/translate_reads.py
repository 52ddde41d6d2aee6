"""Proto messages of the read APIs -> response bodies (responses_reads.py)."""

from __future__ import annotations

from datetime import datetime

from gpufleet.v1 import billing_pb2, monitoring_pb2

from services.gateway.entrypoints import responses_reads as out
from services.gateway.entrypoints.translate import UpstreamContractError
from shared.errors import InvalidArgument
from shared.wire import parse_ts


def _at(value: str) -> datetime:
    """A timestamp the service must send (these answers have no optional ones)."""
    try:
        parsed = parse_ts(value)
    except InvalidArgument as exc:
        raise UpstreamContractError(f"not an RFC 3339 timestamp: {value!r}") from exc
    if parsed is None:
        raise UpstreamContractError("a required timestamp is missing")
    return parsed


def _seconds(value: str) -> float:
    try:
        return float(value or 0)
    except ValueError as exc:
        raise UpstreamContractError(f"not a decimal: {value!r}") from exc


def cost_group(g: billing_pb2.CostGroup) -> out.CostGroupOut:
    return out.CostGroupOut(
        key=g.key, gpu_seconds=_seconds(g.gpu_seconds), cost=g.cost, running_cost=g.running_cost, jobs=g.jobs
    )


def cost_summary(s: billing_pb2.CostSummary) -> out.CostSummaryOut:
    return out.CostSummaryOut(
        group_by=s.group_by,
        from_=_at(s.from_time),
        to=_at(s.to_time),
        currency=s.currency,
        include_running=s.include_running,
        as_of=_at(s.as_of),
        groups=[cost_group(g) for g in s.groups],
        total=out.CostTotalOut(
            gpu_seconds=_seconds(s.total.gpu_seconds),
            cost=s.total.cost,
            running_cost=s.total.running_cost,
            jobs=s.total.jobs,
        ),
    )


def utilization_series(s: monitoring_pb2.UtilizationSeries) -> out.UtilizationSeriesOut:
    return out.UtilizationSeriesOut(
        from_=_at(s.from_time),
        to=_at(s.to_time),
        step_seconds=s.step_seconds,
        series=[
            out.GpuSeriesOut(
                gpu_id=g.gpu_id,
                gpu_name=g.gpu_name,
                gpu_type=g.gpu_type,
                points=[
                    out.UtilizationPointOut(
                        t=_at(p.t),
                        utilization=p.utilization,
                        memory_used_mb=p.memory_used_mb,
                        samples=p.samples,
                    )
                    for p in g.points
                ],
            )
            for g in s.series
        ],
        aggregate=out.AggregateSeriesOut(
            points=[
                out.AggregatePointOut(t=_at(p.t), utilization=p.utilization, gpus=p.gpus) for p in s.aggregate
            ]
        ),
    )
