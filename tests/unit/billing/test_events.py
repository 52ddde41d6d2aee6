"""The CostRecorded event built from a domain cost: the public payload, field by field. No I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from services.billing.adapters.events import SOURCE, cost_recorded
from services.billing.domain.costs import FinishedJob, HeldGpu, cost_of
from shared.contracts.costs import COST_RECORDED, CostRecordedV1

from .helpers import T0


def test_the_event_carries_the_total_the_held_time_and_every_line() -> None:
    t4, h100 = HeldGpu(uuid.uuid4(), "t4", Decimal("1.2")), HeldGpu(uuid.uuid4(), "h100", Decimal("3.6"))
    job = FinishedJob(uuid.uuid4(), uuid.uuid4(), None, (t4, h100), T0, T0 + timedelta(minutes=10))
    cost = cost_of(job)
    assert cost is not None
    envelope = cost_recorded(cost)
    assert (envelope.type, envelope.source) == (COST_RECORDED, SOURCE)
    assert envelope.subject == str(job.job_id) and envelope.organization_id == str(job.organization_id)
    payload = CostRecordedV1.model_validate_json(envelope.value())  # what goes on the wire, read back
    assert payload.total_cost == Decimal("0.80000000") and payload.gpu_count == 2
    assert payload.held_seconds == Decimal("600") and payload.user_id is None and payload.currency == "USD"
    assert (payload.start_time, payload.end_time) == (T0, T0 + timedelta(minutes=10))
    assert {line.gpu_id: (line.gpu_type, line.cost) for line in payload.lines} == {
        t4.gpu_id: ("t4", Decimal("0.20000000")),
        h100.gpu_id: ("h100", Decimal("0.60000000")),
    }
