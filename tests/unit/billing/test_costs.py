"""Cost arithmetic: price x GPUs x seconds held, exact and rounded once per line."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.billing.domain.costs import cost_of, line_cost, seconds_between
from shared.contracts.jobs import GpuAllocationV1, JobSnapshotV1

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def job(allocation, *, held=timedelta(seconds=90), status="succeeded", scheduled=True) -> JobSnapshotV1:
    return JobSnapshotV1(
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        status=status,
        command="x",
        gpu_count=len(allocation) or 1,
        gpu_memory_mb=0,
        priority=50,
        allocation=allocation,
        created_at=T0,
        scheduled_at=T0 if scheduled else None,
        finished_at=T0 + held,
    )


def gpu(price: str, gpu_type="a100-80gb", index=0) -> GpuAllocationV1:
    return GpuAllocationV1(
        gpu_id=uuid.uuid4(), gpu_index=index, gpu_type=gpu_type, cost_per_hour=Decimal(price)
    )


def test_one_gpu_for_an_hour_costs_its_hourly_price():
    cost = cost_of(job([gpu("2.5000")], held=timedelta(hours=1)))
    assert (
        cost is not None
        and cost.total == Decimal("2.50000000")
        and cost.held_seconds == Decimal("3600.000000")
    )


def test_multi_gpu_job_sums_lines_with_their_own_prices():
    cost = cost_of(
        job([gpu("1.8900", index=0), gpu("3.0000", "h100-80gb", index=1)], held=timedelta(seconds=90))
    )
    assert cost is not None
    assert [line.cost for line in cost.lines] == [Decimal("0.04725000"), Decimal("0.07500000")]
    assert cost.total == Decimal("0.12225000")


def test_microseconds_count_and_lines_round_half_even():
    assert seconds_between(T0, T0 + timedelta(seconds=1, microseconds=250)) == Decimal("1.000250")
    # 1.0 $/h for 0.018 s = 0.000005 $ exactly: stays; 0.009 s = 0.0000025 -> half-even to 0.00000250
    assert line_cost(Decimal("1"), Decimal("0.009")) == Decimal("0.00000250")
    assert line_cost(Decimal("0.0001"), Decimal("0.000018")) == Decimal("0E-8")


def test_a_job_that_never_held_a_gpu_costs_nothing():
    assert cost_of(job([], status="cancelled", scheduled=False)) is None


def test_release_before_allocation_is_clamped_to_zero_seconds():
    cost = cost_of(job([gpu("2")], held=timedelta(seconds=-5)))
    assert cost is not None and cost.total == 0 and cost.held_seconds == 0
