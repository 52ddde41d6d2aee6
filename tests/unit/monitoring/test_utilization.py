"""The utilization window rule and the batch-to-columns converter (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.monitoring.adapters.repository import COLUMNS, sample_columns
from services.monitoring.domain.utilization import DEFAULT_HOURS, MAX_HOURS, window_hours
from shared.contracts.metrics import GpuMetricsSampledV1, GpuSampleV1
from shared.errors import InvalidArgument


def test_zero_hours_means_the_default_day() -> None:
    assert window_hours(0) == DEFAULT_HOURS == 24


@pytest.mark.parametrize("hours", [1, 48, MAX_HOURS])
def test_hours_within_bounds_are_kept(hours: int) -> None:
    assert window_hours(hours) == hours


@pytest.mark.parametrize("hours", [-1, MAX_HOURS + 1, 10_000])
def test_hours_outside_bounds_are_invalid(hours: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        window_hours(hours)
    assert err.value.field == "hours" and "720" in err.value.message


def test_every_sample_of_every_record_becomes_one_row_of_columns() -> None:
    now = datetime.now(UTC)
    org, job, busy, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = GpuMetricsSampledV1(
        node_id=uuid.uuid4(),
        samples=[
            GpuSampleV1(
                gpu_id=busy, gpu_name="GPU 0", gpu_type="a100", timestamp=now, gpu_utilization=87.456,
                memory_used_mb=30_000, memory_total_mb=40_960, power_usage_w=250.004, temperature_c=71.0,
                job_id=job, organization_id=org,
            ),
            GpuSampleV1(
                gpu_id=idle, gpu_name="GPU 1", gpu_type="a100", timestamp=now, gpu_utilization=0,
                memory_used_mb=0, memory_total_mb=40_960,
            ),
        ],
    )  # fmt: skip
    second = GpuMetricsSampledV1(node_id=uuid.uuid4(), samples=[])
    cols = sample_columns([first, second])
    assert set(cols) == set(COLUMNS) and all(len(v) == 2 for v in cols.values())
    assert cols["gpu_id"] == [str(busy), str(idle)]
    assert cols["node_id"] == [str(first.node_id)] * 2
    assert cols["org"] == [str(org), None] and cols["job"] == [str(job), None]  # idle: no tenant
    assert cols["util"] == [87.46, 0] and cols["power"] == [250.0, None] and cols["temp"] == [71.0, None]
    assert sample_columns([second]) == {k: [] for k in COLUMNS}
