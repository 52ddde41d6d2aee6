"""Cost arithmetic: a finished job in, exact Decimal lines out. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.billing.domain.costs import FinishedJob, HeldGpu, cost_of, line_cost, seconds_between

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def gpu(price: str, gpu_type: str = "a100") -> HeldGpu:
    return HeldGpu(gpu_id=uuid.uuid4(), gpu_type=gpu_type, cost_per_hour=Decimal(price))


def finished_job(allocation: list[HeldGpu], held: timedelta | None) -> FinishedJob:
    """``held`` None: the job ended without ever being placed."""
    return FinishedJob(
        job_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        allocation=tuple(allocation),
        scheduled_at=None if held is None else T0,
        finished_at=T0 + (held or timedelta(seconds=30)),
    )


def test_one_gpu_for_an_hour_and_a_half_costs_one_and_a_half_hours() -> None:
    job = finished_job([gpu("2.5000")], timedelta(hours=1, minutes=30))
    cost = cost_of(job)
    assert cost is not None
    (line,) = cost.lines
    assert line.seconds == Decimal("5400.000000")
    assert line.cost == Decimal("3.75000000")
    assert cost.total == Decimal("3.75000000")
    assert (cost.job_id, cost.organization_id, cost.user_id) == (job.job_id, job.organization_id, job.user_id)
    assert (line.start_time, line.end_time) == (job.scheduled_at, job.finished_at)
    assert cost.held_seconds == Decimal("5400") and cost.currency == "USD"


def test_held_time_is_exact_to_the_microsecond() -> None:
    held = timedelta(days=2, hours=3, seconds=7, microseconds=1)
    assert seconds_between(T0, T0 + held) == Decimal("183607.000001")
    cost = cost_of(finished_job([gpu("3.6000")], held))
    assert cost is not None
    # 3.6 USD/h is 0.001 USD/s: 183607.000001 s -> 183.607000001, rounded to 8 places.
    assert cost.total == Decimal("183.60700000")


def test_line_cost_rounds_half_to_even_at_eight_decimals() -> None:
    # 0.0001 USD/h x 0.18 s / 3600 = 0.000000005 exactly: a tie, rounded to the even 0.
    assert line_cost(Decimal("0.0001"), Decimal("0.18")) == Decimal("0E-8")
    # 0.0001 x 0.54 / 3600 = 0.000000015: a tie, rounded up to the even 0.00000002.
    assert line_cost(Decimal("0.0001"), Decimal("0.54")) == Decimal("0.00000002")
    # Not a tie: ordinary rounding. 1 USD/h for 1 s = 0.000277777... -> 0.00027778.
    assert line_cost(Decimal("1"), Decimal("1")) == Decimal("0.00027778")


def test_multi_gpu_job_with_different_prices_sums_its_lines() -> None:
    cheap, dear = gpu("1.1000", "t4"), gpu("4.0000", "h100")
    cost = cost_of(finished_job([cheap, dear], timedelta(seconds=1)))
    assert cost is not None
    by_gpu = {line.gpu_id: line for line in cost.lines}
    assert by_gpu[cheap.gpu_id].cost == Decimal("0.00030556")  # 1.1 / 3600 = 0.000305555...
    assert by_gpu[dear.gpu_id].cost == Decimal("0.00111111")  # 4 / 3600 = 0.001111111...
    assert by_gpu[dear.gpu_id].gpu_type == "h100" and by_gpu[dear.gpu_id].cost_per_hour == Decimal("4")
    # The total is the sum of the rounded lines (so an invoice adds up), not the rounded exact sum.
    assert cost.total == Decimal("0.00141667") == sum(line.cost for line in cost.lines)
    assert cost.held_seconds == Decimal("1") and len(cost.lines) == 2


def test_a_job_cancelled_while_queued_costs_nothing() -> None:
    assert cost_of(finished_job([], None)) is None


def test_a_job_that_failed_after_placement_is_billed_for_the_time_it_held_gpus() -> None:
    cost = cost_of(finished_job([gpu("0.3600")], timedelta(seconds=10)))
    assert cost is not None and cost.total == Decimal("0.00100000")


def test_a_release_stamped_before_the_allocation_costs_zero_not_a_refund() -> None:
    job = replace(finished_job([gpu("2")], timedelta(seconds=5)), finished_at=T0 - timedelta(seconds=1))
    cost = cost_of(job)
    assert cost is not None and cost.total == Decimal("0") and cost.lines[0].seconds == Decimal("0")
