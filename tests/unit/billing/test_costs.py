"""Cost arithmetic: an ended attempt in, exact Decimal lines out; a job's cost over attempts. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing.domain.costs import (
    EndedAttempt,
    HeldGpu,
    Outcome,
    cost_of,
    job_cost,
    line_cost,
    seconds_between,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def gpu(price: str, gpu_type: str = "a100") -> HeldGpu:
    return HeldGpu(gpu_id=uuid.uuid4(), gpu_type=gpu_type, cost_per_hour=Decimal(price))


def ended(
    allocation: list[HeldGpu],
    held: timedelta | None,
    *,
    outcome: Outcome = "succeeded",
    attempt: int = 1,
    job_id: uuid.UUID | None = None,
    start: datetime = T0,
) -> EndedAttempt:
    """``held`` None: the attempt ended without ever being placed."""
    return EndedAttempt(
        job_id=job_id or uuid.uuid4(),
        organization_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        attempt=attempt,
        outcome=outcome,
        allocation=tuple(allocation),
        scheduled_at=None if held is None else start,
        released_at=start + (held or timedelta(seconds=30)),
    )


def test_one_gpu_for_an_hour_and_a_half_costs_one_and_a_half_hours() -> None:
    attempt = ended([gpu("2.5000")], timedelta(hours=1, minutes=30))
    cost = cost_of(attempt)
    assert cost is not None
    (line,) = cost.lines
    assert line.seconds == Decimal("5400.000000")
    assert line.cost == Decimal("3.75000000") and line.credit == 0 and line.attempt == 1
    assert cost.total == cost.gross == Decimal("3.75000000") and cost.credit == 0
    assert (cost.job_id, cost.organization_id, cost.user_id) == (
        attempt.job_id,
        attempt.organization_id,
        attempt.user_id,
    )
    assert (line.start_time, line.end_time) == (attempt.scheduled_at, attempt.released_at)
    assert cost.held_seconds == Decimal("5400") and cost.currency == "USD"
    assert cost.outcome == "succeeded" and not cost.credited


def test_held_time_is_exact_to_the_microsecond() -> None:
    held = timedelta(days=2, hours=3, seconds=7, microseconds=1)
    assert seconds_between(T0, T0 + held) == Decimal("183607.000001")
    cost = cost_of(ended([gpu("3.6000")], held))
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


def test_multi_gpu_attempt_with_different_prices_sums_its_lines() -> None:
    cheap, dear = gpu("1.1000", "t4"), gpu("4.0000", "h100")
    cost = cost_of(ended([cheap, dear], timedelta(seconds=1)))
    assert cost is not None
    by_gpu = {line.gpu_id: line for line in cost.lines}
    assert by_gpu[cheap.gpu_id].cost == Decimal("0.00030556")  # 1.1 / 3600 = 0.000305555...
    assert by_gpu[dear.gpu_id].cost == Decimal("0.00111111")  # 4 / 3600 = 0.001111111...
    assert by_gpu[dear.gpu_id].gpu_type == "h100" and by_gpu[dear.gpu_id].cost_per_hour == Decimal("4")
    # The total is the sum of the rounded lines (so an invoice adds up), not the rounded exact sum.
    assert cost.total == Decimal("0.00141667") == sum(line.cost for line in cost.lines)
    assert cost.held_seconds == Decimal("1") and len(cost.lines) == 2


def test_an_attempt_cancelled_while_queued_costs_nothing() -> None:
    assert cost_of(ended([], None, outcome="cancelled")) is None


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled", "timed_out"])
def test_an_attempt_that_ended_on_its_own_is_charged_for_the_time_it_held_gpus(outcome: Outcome) -> None:
    cost = cost_of(ended([gpu("0.3600")], timedelta(seconds=10), outcome=outcome, attempt=3))
    assert cost is not None and cost.total == cost.gross == Decimal("0.00100000") and cost.credit == 0
    assert cost.attempt == 3 and cost.lines[0].attempt == 3 and cost.outcome == outcome


def test_an_attempt_lost_to_infrastructure_is_recorded_and_credited_to_a_net_of_zero() -> None:
    cheap, dear = gpu("1.2000", "t4"), gpu("3.6000", "h100")
    cost = cost_of(ended([cheap, dear], timedelta(minutes=10), outcome="requeued", attempt=2))
    assert cost is not None and cost.credited and cost.attempt == 2
    # The GPU time it held is there, line by line, and each line gives all of it back.
    assert {line.gpu_id: (line.cost, line.credit, line.net) for line in cost.lines} == {
        cheap.gpu_id: (Decimal("0.20000000"), Decimal("0.20000000"), Decimal(0)),
        dear.gpu_id: (Decimal("0.60000000"), Decimal("0.60000000"), Decimal(0)),
    }
    assert cost.gross == cost.credit == Decimal("0.80000000") and cost.total == 0
    assert cost.held_seconds == Decimal("600")


def test_a_job_pays_only_for_the_attempts_that_ended_on_their_own() -> None:
    job_id = uuid.uuid4()
    lost_first = cost_of(ended([gpu("2.0000")], timedelta(hours=1), outcome="requeued", job_id=job_id))
    lost_second = cost_of(
        ended([gpu("2.0000")], timedelta(minutes=30), outcome="requeued", attempt=2, job_id=job_id)
    )
    last = cost_of(ended([gpu("2.0000")], timedelta(minutes=15), attempt=3, job_id=job_id))
    assert lost_first and lost_second and last
    job = job_cost([last, lost_first, lost_second])  # read back in any order: shown in attempt order
    assert [a.attempt for a in job.attempts] == [1, 2, 3]
    assert [line.attempt for line in job.lines] == [1, 2, 3]
    assert job.gross == Decimal("3.50000000") and job.credit == Decimal("3.00000000")
    assert job.total == last.total == Decimal("0.50000000")  # net = the last attempt
    assert job.held_seconds == Decimal("900") and job.gpu_count == 1


def test_a_release_stamped_before_the_allocation_costs_zero_not_a_refund() -> None:
    attempt = replace(ended([gpu("2")], timedelta(seconds=5)), released_at=T0 - timedelta(seconds=1))
    cost = cost_of(attempt)
    assert cost is not None and cost.total == Decimal("0") and cost.lines[0].seconds == Decimal("0")
