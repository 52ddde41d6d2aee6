"""The CostRecorded event built from an attempt's cost: the public payload, field by field. No I/O."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal

from services.billing.adapters.events import SOURCE, cost_recorded
from services.billing.domain.costs import EndedAttempt, HeldGpu, Outcome, cost_of
from shared.contracts.costs import COST_RECORDED, CostRecordedV1

from .helpers import T0


def recorded(outcome: Outcome, attempt: int) -> tuple[EndedAttempt, CostRecordedV1, HeldGpu, HeldGpu]:
    t4, h100 = HeldGpu(uuid.uuid4(), "t4", Decimal("1.2")), HeldGpu(uuid.uuid4(), "h100", Decimal("3.6"))
    ended = EndedAttempt(
        uuid.uuid4(), uuid.uuid4(), None, attempt, outcome, (t4, h100), T0, T0 + timedelta(minutes=10)
    )
    cost = cost_of(ended)
    assert cost is not None
    envelope = cost_recorded(cost)
    assert (envelope.type, envelope.source) == (COST_RECORDED, SOURCE)
    assert envelope.subject == str(ended.job_id) and envelope.organization_id == str(ended.organization_id)
    return ended, CostRecordedV1.model_validate_json(envelope.value()), t4, h100  # the wire, read back


def test_the_event_carries_the_total_the_held_time_the_attempt_and_every_line() -> None:
    _, payload, t4, h100 = recorded("succeeded", 1)
    assert payload.total_cost == payload.gross_cost == Decimal("0.80000000") and payload.credit == 0
    assert payload.gpu_count == 2 and (payload.attempt, payload.outcome) == (1, "succeeded")
    assert payload.held_seconds == Decimal("600") and payload.user_id is None and payload.currency == "USD"
    assert (payload.start_time, payload.end_time) == (T0, T0 + timedelta(minutes=10))
    assert {line.gpu_id: (line.gpu_type, line.cost, line.credit, line.attempt) for line in payload.lines} == {
        t4.gpu_id: ("t4", Decimal("0.20000000"), Decimal(0), 1),
        h100.gpu_id: ("h100", Decimal("0.60000000"), Decimal(0), 1),
    }


def test_an_attempt_lost_to_infrastructure_is_announced_with_its_credit_and_a_zero_total() -> None:
    _, payload, t4, h100 = recorded("requeued", 2)
    assert (payload.attempt, payload.outcome) == (2, "requeued")
    assert payload.gross_cost == payload.credit == Decimal("0.80000000") and payload.total_cost == 0
    assert {line.gpu_id: (line.cost, line.credit, line.attempt) for line in payload.lines} == {
        t4.gpu_id: (Decimal("0.20000000"), Decimal("0.20000000"), 2),
        h100.gpu_id: (Decimal("0.60000000"), Decimal("0.60000000"), 2),
    }


def test_an_event_from_before_attempts_reads_as_a_charged_first_attempt() -> None:
    at, until = "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z"
    old = json.dumps(
        {
            "job_id": str(uuid.uuid4()),
            "organization_id": str(uuid.uuid4()),
            "total_cost": "1.5",
            "gpu_count": 1,
            "held_seconds": "60",
            "start_time": at,
            "end_time": until,
            "lines": [
                {
                    "gpu_id": str(uuid.uuid4()),
                    "gpu_type": "t4",
                    "cost_per_hour": "90",
                    "start_time": at,
                    "end_time": until,
                    "seconds": "60",
                    "cost": "1.5",
                }
            ],
        }
    )
    payload = CostRecordedV1.model_validate_json(old)
    assert (payload.attempt, payload.credit, payload.outcome) == (1, 0, None)
    assert (payload.lines[0].attempt, payload.lines[0].credit) == (1, 0)
