"""Rules of the utilization series: its window, its step, its points. No I/O.

The window is ``[from, to)``, by default the hour up to now, at most ``MAX_UTILIZATION_HOURS`` long.
It is cut into buckets ``[from + k x step, from + (k + 1) x step)``; a series has at most
``MAX_SERIES_POINTS`` buckets. Without a step, the smallest round step that fits is chosen (1 s, 2 s,
5 s, 10 s, 15 s, 30 s, 1 min, ...); a step that would give more points is refused, never silently
widened. A bucket's utilization is the mean of its samples as a fraction (the samples hold percent).
The samples counted are the ones taken while the organization's jobs held the GPU, the same rule as the
24-hour utilization (domain/utilization.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.contracts.limits import (
    DEFAULT_SERIES_WINDOW_SECONDS,
    MAX_SERIES_POINTS,
    MAX_UTILIZATION_HOURS,
    MIN_SERIES_STEP_SECONDS,
)
from shared.errors import InvalidArgument

# Steps a person reads easily on an axis; past a day, whole days.
ROUND_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class SeriesWindow:
    start: datetime  # inclusive, the first bucket's start
    end: datetime  # exclusive
    step_seconds: int

    @property
    def points(self) -> int:
        """Buckets in the window (the last one may reach past ``end``)."""
        return points_in(self.end - self.start, self.step_seconds)


def points_in(span: timedelta, step_seconds: int) -> int:
    return math.ceil(span.total_seconds() / step_seconds)


def chosen_step(span: timedelta) -> int:
    """The smallest round step giving at most MAX_SERIES_POINTS buckets over ``span``."""
    for step in ROUND_STEPS:
        if points_in(span, step) <= MAX_SERIES_POINTS:
            return step
    days = math.ceil(span.total_seconds() / MAX_SERIES_POINTS / 86400)
    return days * 86400


def series_window(
    start: datetime | None, end: datetime | None, step_seconds: int, now: datetime
) -> SeriesWindow:
    """The window asked for: ``end`` defaults to ``now``, ``start`` to an hour before ``end``;
    ``step_seconds`` 0 (proto's unset) to :func:`chosen_step`."""
    end = end or now
    start = start or end - timedelta(seconds=DEFAULT_SERIES_WINDOW_SECONDS)
    if start >= end:
        raise InvalidArgument("from must be before to", field="from")
    if end - start > timedelta(hours=MAX_UTILIZATION_HOURS):
        raise InvalidArgument(f"the window may span at most {MAX_UTILIZATION_HOURS} hours", field="from")
    if step_seconds == 0:
        return SeriesWindow(start, end, chosen_step(end - start))
    if step_seconds < MIN_SERIES_STEP_SECONDS:
        raise InvalidArgument(f"step must be at least {MIN_SERIES_STEP_SECONDS} second", field="step")
    if points_in(end - start, step_seconds) > MAX_SERIES_POINTS:
        smallest = math.ceil((end - start).total_seconds() / MAX_SERIES_POINTS)
        raise InvalidArgument(
            f"step {step_seconds} s gives more than {MAX_SERIES_POINTS} points over this window; "
            f"use at least {smallest} s",
            field="step",
        )
    return SeriesWindow(start, end, step_seconds)


@dataclass(frozen=True)
class SeriesPoint:
    t: datetime  # the bucket's start
    utilization: float  # fraction 0..1
    memory_used_mb: int
    samples: int


@dataclass(frozen=True)
class GpuSeries:
    gpu_id: UUID
    gpu_name: str
    gpu_type: str
    points: list[SeriesPoint]


@dataclass(frozen=True)
class AggregatePoint:
    t: datetime
    utilization: float  # fraction 0..1: mean of the GPUs' bucket means
    gpus: int


@dataclass(frozen=True)
class UtilizationSeries:
    window: SeriesWindow
    series: list[GpuSeries]
    aggregate: list[AggregatePoint]
