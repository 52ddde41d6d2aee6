"""The utilization series' rules: the window, the step chosen or refused, the points per series."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.monitoring.domain.series import (
    ROUND_STEPS,
    GpuSeries,
    SeriesPoint,
    SeriesWindow,
    UtilizationSeries,
    chosen_step,
    series_window,
)
from services.monitoring.entrypoints.grpc_server import series_to_proto
from services.monitoring.service_layer import commands
from services.monitoring.service_layer.handlers import Dependencies, handle
from shared.contracts.limits import MAX_SERIES_POINTS
from shared.errors import InvalidArgument

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(seconds=1), 1),
        (timedelta(seconds=500), 1),
        (timedelta(seconds=501), 2),
        (timedelta(hours=1), 10),  # 360 points
        (timedelta(hours=6), 60),
        (timedelta(hours=24), 300),  # 288 points
        (timedelta(days=7), 1800),  # 336 points
        (timedelta(days=30), 7200),  # 360 points
        (timedelta(days=300), 86400),
        (timedelta(days=1000), 2 * 86400),
    ],
)
def test_the_chosen_step_is_the_smallest_round_one_within_500_points(span: timedelta, step: int) -> None:
    assert chosen_step(span) == step
    assert span.total_seconds() / step <= MAX_SERIES_POINTS
    smaller = [s for s in ROUND_STEPS if s < step]
    assert not smaller or span.total_seconds() / smaller[-1] > MAX_SERIES_POINTS


def test_the_default_window_is_the_hour_up_to_now() -> None:
    w = series_window(None, None, 0, NOW)
    assert (w.start, w.end, w.step_seconds, w.points) == (NOW - timedelta(hours=1), NOW, 10, 360)
    end = NOW - timedelta(days=1)
    assert series_window(None, end, 60, NOW) == SeriesWindow(end - timedelta(hours=1), end, 60)


def test_a_given_step_is_kept_when_it_fits() -> None:
    w = series_window(NOW - timedelta(seconds=500), NOW, 1, NOW)
    assert (w.step_seconds, w.points) == (1, 500)
    assert series_window(NOW - timedelta(seconds=10), NOW, 3600, NOW).points == 1


@pytest.mark.parametrize(
    ("start", "end", "step", "field"),
    [
        (NOW - timedelta(seconds=501), NOW, 1, "step"),
        (NOW - timedelta(hours=1), NOW, 7, "step"),
        (NOW - timedelta(hours=1), NOW, -60, "step"),
        (NOW, NOW, 0, "from"),
        (NOW, NOW - timedelta(seconds=1), 60, "from"),
        (NOW - timedelta(hours=721), NOW, 0, "from"),
    ],
)
def test_too_small_steps_and_bad_windows_are_refused(
    start: datetime, end: datetime, step: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        series_window(start, end, step, NOW)
    assert err.value.field == field


def test_the_refusal_says_the_smallest_step_that_fits() -> None:
    with pytest.raises(InvalidArgument) as err:
        series_window(NOW - timedelta(hours=1), NOW, 7, NOW)
    assert "at least 8 s" in err.value.message


def test_the_wire_carries_fractions_and_bucket_starts() -> None:
    gpu = uuid.uuid4()
    answer = UtilizationSeries(
        SeriesWindow(NOW - timedelta(minutes=2), NOW, 60),
        [GpuSeries(gpu, "GPU 0", "a100", [SeriesPoint(NOW - timedelta(minutes=2), 0.9312, 1234, 6)])],
        [],
    )
    reply = series_to_proto(answer)
    assert (reply.step_seconds, reply.from_time, reply.to_time) == (
        60,
        "2026-12-02T11:58:00Z",
        "2026-12-02T12:00:00Z",
    )
    (point,) = reply.series[0].points
    assert (point.t, point.utilization, point.memory_used_mb, point.samples) == (
        "2026-12-02T11:58:00Z",
        0.9312,
        1234,
        6,
    )


async def test_the_handler_asks_as_the_tenant_and_refuses_before_any_unit_of_work() -> None:
    asked: list[tuple[uuid.UUID | None, uuid.UUID, SeriesWindow, uuid.UUID | None, uuid.UUID | None]] = []

    class Unit:
        def __init__(self, org_id: uuid.UUID | None) -> None:
            self.org_id = org_id

        async def utilization_series(
            self,
            organization_id: uuid.UUID,
            window: SeriesWindow,
            gpu_id: uuid.UUID | None,
            project_id: uuid.UUID | None = None,
        ) -> UtilizationSeries:
            asked.append((self.org_id, organization_id, window, gpu_id, project_id))
            return UtilizationSeries(window, [], [])

    @asynccontextmanager
    async def uow(*, org_id: uuid.UUID | None = None, system: bool = False) -> AsyncIterator[Unit]:
        yield Unit(org_id)

    deps = Dependencies(uow=uow)  # type: ignore[arg-type]
    org, gpu = uuid.uuid4(), uuid.uuid4()
    start = NOW - timedelta(minutes=10)
    answer = await handle(commands.GetUtilizationSeries(org, start, NOW, 0, gpu), deps)
    assert asked == [(org, org, SeriesWindow(start, NOW, 2), gpu, None)] and answer.series == []
    with pytest.raises(InvalidArgument):
        await handle(commands.GetUtilizationSeries(org, start, NOW, 1), deps)
    assert len(asked) == 1
    project = uuid.uuid4()  # a project-bound key's project reaches the query
    await handle(commands.GetUtilizationSeries(org, start, NOW, 0, None, project_id=project), deps)
    assert asked[1] == (org, org, SeriesWindow(start, NOW, 2), None, project)
