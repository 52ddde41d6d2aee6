"""The comparison table (Markdown, like issue 8's) and the machine-readable summary."""

from __future__ import annotations

import math
from collections.abc import Callable

from tests.bench.vs_slurm.measure import RunResult

OURS = "ours"
SLURMS = ("slurm-shipped", "slurm-tuned")
TITLES = {"ours": "this project", "slurm-shipped": "Slurm as shipped", "slurm-tuned": "Slurm tuned"}


def _f(v: float, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def _ratio(ours: float, theirs: float, higher_is_better: bool) -> float:
    if not ours or not theirs or math.isnan(ours) or math.isnan(theirs):
        return math.nan
    return ours / theirs if higher_is_better else theirs / ours


# (label, how a cell reads, the figure the ratio compares, whether more is better)
Row = tuple[str, Callable[[RunResult], str], Callable[[RunResult], float], bool]
ROWS: list[Row] = [
    ("jobs scheduled per second", lambda r: _f(r.scheduled_per_s, 2), lambda r: r.scheduled_per_s, True),
    ("jobs completed per second", lambda r: _f(r.completed_per_s, 2), lambda r: r.completed_per_s, True),
    (
        "submits per second",
        lambda r: f"{_f(r.submit_per_s)} (p50 {_f(r.submit_ms_p50, 0)} ms, p99 {_f(r.submit_ms_p99, 0)} ms)",
        lambda r: r.submit_per_s,
        True,
    ),
    (
        "submit → running, idle fleet",
        lambda r: f"p50 {_f(r.probe_running_ms_p50, 0)} ms, p99 {_f(r.probe_running_ms_p99, 0)} ms",
        lambda r: r.probe_running_ms_p50,
        False,
    ),
    (
        "CPU seconds (all daemons)",
        lambda r: f"{_f(r.cpu_s)} ({_f(r.cpu_s / r.jobs * 1000, 1)} ms/job)",
        lambda r: r.cpu_s / r.jobs,
        False,
    ),
    ("jobs in the run", lambda r: f"{r.jobs:,}", lambda r: math.nan, True),
]


def ratios(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """ours against each Slurm profile, per GPU count; above 1 means this project is ahead."""
    out: dict[str, dict[str, float]] = {}
    for gpus in sorted({r.gpus for r in results}):
        by = {r.side: r for r in results if r.gpus == gpus}
        if OURS not in by:
            continue
        for slurm in SLURMS:
            if slurm in by:
                o, s = by[OURS], by[slurm]
                out[f"{gpus}_gpus_vs_{slurm}"] = {
                    "scheduled_per_s": _ratio(o.scheduled_per_s, s.scheduled_per_s, True),
                    "completed_per_s": _ratio(o.completed_per_s, s.completed_per_s, True),
                    "submit_per_s": _ratio(o.submit_per_s, s.submit_per_s, True),
                    "probe_running_ms_p50": _ratio(o.probe_running_ms_p50, s.probe_running_ms_p50, False),
                    "cpu_s_per_job": _ratio(o.cpu_s / o.jobs, s.cpu_s / s.jobs, False),
                }
    return out


def table(results: list[RunResult]) -> str:
    sides = [s for s in (OURS, *SLURMS) if any(r.side == s for r in results)]
    slurms = [s for s in SLURMS if s in sides]
    ratio_cols = [f"ratio vs {TITLES[s].removeprefix('Slurm ')}" for s in slurms] if OURS in sides else []
    head = ["", *(TITLES[s] for s in sides), *ratio_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for gpus in sorted({r.gpus for r in results}):
        by = {r.side: r for r in results if r.gpus == gpus}
        for label, cell, figure, higher in ROWS:
            row = [f"{label}, {gpus} GPUs"]
            row += [cell(by[s]) if s in by else "–" for s in sides]
            if ratio_cols:
                for s in slurms:
                    ok = OURS in by and s in by
                    value = _ratio(figure(by[OURS]), figure(by[s]), higher) if ok else math.nan
                    row.append("–" if math.isnan(value) else f"{value:.2f}×")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Ratios: above 1× means this project is ahead (rates: ours ÷ Slurm; latency and CPU per job: "
        "Slurm ÷ ours)."
    )
    return "\n".join(lines)
