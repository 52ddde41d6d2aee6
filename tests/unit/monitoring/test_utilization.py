"""The utilization window rule and the samples-to-columns converter (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.monitoring.adapters.repository import COLUMNS, sample_columns
from services.monitoring.domain.samples import GpuSample
from services.monitoring.domain.utilization import window_hours
from shared.contracts.limits import DEFAULT_UTILIZATION_HOURS as DEFAULT_HOURS
from shared.contracts.limits import MAX_UTILIZATION_HOURS as MAX_HOURS
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


def test_every_sample_becomes_one_row_of_columns() -> None:
    now = datetime.now(UTC)
    node, org, job, busy, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    samples = [
        GpuSample(
            node_id=node, gpu_id=busy, gpu_name="GPU 0", gpu_type="a100", timestamp=now, gpu_utilization=87.456,
            memory_used_mb=30_000, memory_total_mb=40_960, power_usage_w=250.004, temperature_c=71.0,
            claimed_job_id=job, claimed_organization_id=org,
        ),
        GpuSample(
            node_id=node, gpu_id=idle, gpu_name="GPU 1", gpu_type="a100", timestamp=now, gpu_utilization=0,
            memory_used_mb=0, memory_total_mb=40_960,
        ),
    ]  # fmt: skip
    cols = sample_columns(samples)
    assert set(cols) == set(COLUMNS) and all(len(v) == 2 for v in cols.values())
    assert cols["gpu_id"] == [str(busy), str(idle)]
    assert cols["node_id"] == [str(node)] * 2 and cols["ts"] == [now, now]
    assert "org" not in cols and "job" not in cols  # the agent's claim is never what is stored
    assert cols["util"] == [87.46, 0] and cols["power"] == [250.0, None] and cols["temp"] == [71.0, None]
    assert cols["mem_used"] == [30_000, 0] and cols["mem_total"] == [40_960, 40_960]
    assert sample_columns([]) == {k: [] for k in COLUMNS}
