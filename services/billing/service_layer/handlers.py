"""Billing use cases: record the cost of a finished job; answer cost questions for a tenant."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from shared.consumers import claim
from shared.contracts import topics
from shared.contracts.costs import COST_RECORDED, CostLineV1, CostRecordedV1
from shared.contracts.jobs import TERMINAL_EVENTS, JobEventV1
from shared.db import Database
from shared.errors import InvalidArgument, NotFound
from shared.events import Envelope
from shared.outbox import record

from ..adapters import repository
from ..domain.costs import JobCost, cost_of

CONSUMER = "billing.job-costs"
SOURCE = "gpufleet/billing"
DEFAULT_PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True)
class CostPage:
    costs: list[tuple[JobCost, datetime]]
    next_cursor: str | None

    @property
    def total(self) -> Decimal:
        """The sum of this page's jobs (the proto promises the page total, not the organization's)."""
        return sum((cost.total for cost, _ in self.costs), Decimal(0))


async def record_job_cost(db: Database, envelope: Envelope) -> JobCost | None:
    """Consume one job event: on a terminal one, store the cost and announce it, exactly once.

    The ledger claim, the cost lines and the CostRecorded outbox row commit together; a redelivered event
    is skipped by the claim, and the same job arriving under another event id by the lines' UNIQUE key."""
    if envelope.type not in TERMINAL_EVENTS:
        return None
    event = envelope.data
    if not isinstance(event, JobEventV1):  # decoded with jobs.EVENT_TYPES: anything else is a bug
        raise TypeError(f"expected JobEventV1, got {type(event).__name__}")
    cost = cost_of(event.job)
    async with db.transaction(system=True) as session:
        if not await claim(session, CONSUMER, envelope.id) or cost is None:
            return None
        if not await repository.insert_job_cost(session, cost):
            return None
        payload = CostRecordedV1(
            job_id=cost.job_id,
            organization_id=cost.organization_id,
            user_id=cost.user_id,
            currency=cost.currency,
            total_cost=cost.total,
            gpu_count=len(cost.lines),
            held_seconds=cost.held_seconds,
            start_time=cost.start_time,
            end_time=cost.end_time,
            lines=[
                CostLineV1(
                    gpu_id=line.gpu_id,
                    gpu_type=line.gpu_type,
                    cost_per_hour=line.cost_per_hour,
                    start_time=line.start_time,
                    end_time=line.end_time,
                    seconds=line.seconds,
                    cost=line.cost,
                )
                for line in cost.lines
            ],
        )
        await record(
            session,
            topics.COSTS,
            Envelope(
                type=COST_RECORDED,
                source=SOURCE,
                data=payload,
                subject=str(cost.job_id),
                organization_id=str(cost.organization_id),
            ),
            key=str(cost.job_id),
        )
    return cost


async def get_job_cost(db: Database, org_id: UUID, job_id: UUID) -> tuple[JobCost, datetime]:
    async with db.transaction(org_id=org_id) as session:
        found = await repository.job_cost(session, job_id)
    if found is None:
        raise NotFound("no cost recorded for this job")
    return found


def encode_cursor(recorded_at: datetime, job_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{recorded_at.isoformat()}|{job_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        at, job = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        recorded_at = datetime.fromisoformat(at)
        if recorded_at.tzinfo is None:
            raise ValueError("cursor time has no zone")
        return recorded_at, UUID(job)
    except (ValueError, UnicodeError) as exc:
        raise InvalidArgument("cursor is not one this API returned", field="cursor") from exc


def page_size(limit: int) -> int:
    """0 (proto's unset) means the default page; anything outside 1..MAX_PAGE is refused."""
    if limit == 0:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


async def list_job_costs(db: Database, org_id: UUID, limit: int, cursor: str | None) -> CostPage:
    limit = page_size(limit)
    after = decode_cursor(cursor) if cursor else None
    async with db.transaction(org_id=org_id) as session:
        page = await repository.page_of_costs(session, limit + 1, after)
    more = len(page) > limit
    page = page[:limit]
    return CostPage(page, encode_cursor(page[-1][1], page[-1][0].job_id) if more else None)
