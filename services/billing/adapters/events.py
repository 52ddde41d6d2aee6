"""Domain cost of one attempt -> the public CostRecorded event (shared/contracts/costs.py is the
contract)."""

from __future__ import annotations

from shared.contracts.costs import COST_RECORDED, CostLineV1, CostRecordedV1
from shared.events import Envelope

from ..domain.costs import AttemptCost

SOURCE = "gpufleet/billing"


def cost_recorded(cost: AttemptCost) -> Envelope[CostRecordedV1]:
    payload = CostRecordedV1(
        job_id=cost.job_id,
        organization_id=cost.organization_id,
        user_id=cost.user_id,
        project_id=cost.project_id,
        currency=cost.currency,
        total_cost=cost.total,
        gpu_count=len(cost.lines),
        held_seconds=cost.held_seconds,
        start_time=cost.start_time,
        end_time=cost.end_time,
        attempt=cost.attempt,
        outcome=cost.outcome,
        gross_cost=cost.gross,
        credit=cost.credit,
        lines=[
            CostLineV1(
                gpu_id=line.gpu_id,
                gpu_type=line.gpu_type,
                cost_per_hour=line.cost_per_hour,
                start_time=line.start_time,
                end_time=line.end_time,
                seconds=line.seconds,
                cost=line.cost,
                attempt=line.attempt,
                credit=line.credit,
            )
            for line in cost.lines
        ],
    )
    return Envelope(
        type=COST_RECORDED,
        source=SOURCE,
        data=payload,
        subject=str(cost.job_id),
        organization_id=str(cost.organization_id),
    )
