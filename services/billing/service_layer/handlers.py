"""Billing use cases: record the cost of each ended attempt of a job once; answer cost questions for a
tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.cursors import decode_cursor, encode_cursor
from shared.errors import InvalidArgument, NotFound
from shared.handlers import dispatch

from ..adapters import metrics
from ..domain.costs import AttemptCost, RecordedCost, cost_of
from ..domain.projects import project_scope, visible
from ..domain.summary import CostSummary, GroupedSums, empty_group, group_by, summary, window
from . import commands
from .unit_of_work import UnitOfWorkFactory

CONSUMER = "billing.job-costs"
# Running-attempt tombstones are kept as long as the processed-events ledger (shared/consumers.py), past
# the outboxes' 7-day replay window: a replayed scheduled event never revives an ended attempt.
RUNNING_TOMBSTONE_HOURS = 8 * 24


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    clock: Callable[[], datetime] = field(default=utc_now)  # the instant a running cost is valued at


@dataclass(frozen=True)
class CostPage:
    costs: list[RecordedCost]
    next_cursor: str | None

    @property
    def total(self) -> Decimal:
        """The sum of this page's jobs (the proto promises the page total, not the organization's)."""
        return sum((c.cost.total for c in self.costs), Decimal(0))


async def record_attempt_cost(cmd: commands.RecordAttemptCost, deps: Dependencies) -> AttemptCost | None:
    """Store the cost of an ended attempt and announce it, exactly once; None when there was nothing new
    to bill (a redelivered event, the same attempt under another event id, or one that held no GPU).

    The ledger claim, the cost lines and the CostRecorded outbox row commit together; a redelivered event
    is skipped by the claim, and the same attempt arriving under another event id by the lines' UNIQUE
    (job_id, attempt, gpu_id). A GPU-less attempt's event is claimed all the same, so that it is never
    looked at again. An attempt lost to infrastructure is stored and announced like any other, each line
    credited in full (domain/costs.py)."""
    async with deps.uow(system=True) as uow:
        cost = await _record(uow, cmd, deps)
    if cost is not None:
        metrics.counted(cost)
    return cost


async def _record(uow: Any, cmd: commands.RecordAttemptCost, deps: Dependencies) -> AttemptCost | None:
    cost = cost_of(cmd.attempt)
    ended = cmd.attempt
    if not await uow.claim(CONSUMER, cmd.event_id):
        return None
    # In the same transaction as its lines: an attempt is running or billed, never both.
    await uow.end_running(ended.job_id, ended.attempt, ended.released_at or deps.clock())
    if cost is None:
        return None
    if not await uow.add_attempt_cost(cost):
        return None
    await uow.announce_cost(cost)
    return cost


async def apply_job_events(cmd: commands.ApplyJobEvents, deps: Dependencies) -> list[AttemptCost]:
    """A batch of job events in topic order, in one transaction (one commit for the batch instead of
    one per event): each is what :func:`record_attempt_cost` or :func:`track_running_attempt` does
    alone, with the same idempotency, but set-based: one claim of every ended attempt's event id, then
    per run of events that no job's order constrains (:func:`runs`, nearly always the whole batch) one
    statement for the running attempts, one for the ends and one for the cost lines, and one outbox
    write of every cost event. If the transaction fails, none of the batch is applied and the consumer
    retries it (splitting a batch that keeps failing to find the record at fault)."""
    recorded: list[AttemptCost] = []
    async with deps.uow(system=True) as uow:
        ended = [e.event_id for e in cmd.events if isinstance(e, commands.RecordAttemptCost)]
        fresh = await uow.claim_many(CONSUMER, ended) if ended else set()
        for tracks, ends in runs(cmd.events, fresh):
            if tracks:
                await uow.track_running_many([t.attempt for t in tracks])
            if ends:
                # In the same transaction as their lines: an attempt is running or billed, never both.
                await uow.end_running_many(
                    [
                        (e.attempt.job_id, e.attempt.attempt, e.attempt.released_at or deps.clock())
                        for e in ends
                    ]
                )
                costs = [c for e in ends if (c := cost_of(e.attempt)) is not None]
                if costs:
                    recorded.extend(await uow.add_attempt_costs(costs))
        if recorded:
            await uow.announce_costs(recorded)
    for cost in recorded:
        metrics.counted(cost)
    return recorded


Run = tuple[list[commands.TrackRunningAttempt], list[commands.RecordAttemptCost]]


def runs(
    events: tuple[commands.RecordAttemptCost | commands.TrackRunningAttempt, ...], fresh: set[UUID]
) -> list[Run]:
    """Cut a batch (topic order) into runs that can each be applied as "every running attempt, then
    every end" with the result of applying their events one by one: within a run each job has at most
    one end, after all of its running events, and those name one attempt. An end whose event was
    processed before (not in ``fresh``, or already met earlier in this batch) is left out, as
    :func:`record_attempt_cost` skips it."""
    fresh = set(fresh)
    out: list[Run] = []
    tracks: list[commands.TrackRunningAttempt] = []
    ends: list[commands.RecordAttemptCost] = []
    tracked: dict[UUID, int] = {}  # job -> the attempt its running events in this run name
    done: set[UUID] = set()  # jobs with an end in this run
    for event in events:
        if isinstance(event, commands.RecordAttemptCost):
            if event.event_id not in fresh:
                continue
            fresh.discard(event.event_id)
            job = event.attempt.job_id
            if job in done:
                out.append((tracks, ends))
                tracks, ends, tracked, done = [], [], {}, set()
            done.add(job)
            ends.append(event)
        else:
            job, attempt = event.attempt.job_id, event.attempt.attempt
            if job in done or tracked.get(job, attempt) != attempt:
                out.append((tracks, ends))
                tracks, ends, tracked, done = [], [], {}, set()
            tracked[job] = attempt
            tracks.append(event)
    if tracks or ends:
        out.append((tracks, ends))
    return [r for r in out if r[0] or r[1]]


async def get_job_cost(cmd: commands.GetJobCost, deps: Dependencies) -> RecordedCost:
    try:
        job_id = UUID(cmd.job_id)
    except (ValueError, AttributeError, TypeError):
        raise NotFound("no cost recorded for this job") from None  # garbage and foreign ids look alike
    async with deps.uow(org_id=cmd.organization_id) as uow:
        found = await uow.job_cost(job_id)
    if found is None or not visible(found.cost.project_id, cmd.bound_project):
        raise NotFound("no cost recorded for this job")  # another project's job looks like no job
    return found


def page_size(limit: int) -> int:
    """0 (proto's unset) means the default page; anything outside 1..MAX_PAGE is refused."""
    if limit == 0:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


async def list_job_costs(cmd: commands.ListJobCosts, deps: Dependencies) -> CostPage:
    limit = page_size(cmd.limit)
    scope = project_scope(cmd.bound_project, cmd.project_id)
    after = decode_cursor(cmd.cursor) if cmd.cursor else None
    if scope.nothing:
        return CostPage([], None)
    async with deps.uow(org_id=cmd.organization_id) as uow:
        page = await uow.costs(after, limit + 1, project=scope.project)
    more = len(page) > limit
    page = page[:limit]
    last = page[-1] if page else None
    cursor = encode_cursor(last.first_recorded_at, last.cost.job_id) if more and last else None
    return CostPage(page, cursor)


async def track_running_attempt(cmd: commands.TrackRunningAttempt, deps: Dependencies) -> int:
    """Remember which GPUs a running attempt holds, at which price, since when: the cost so far is
    computed from it when asked. Idempotent by the rows' key (job, attempt, GPU), so no ledger claim: a
    scheduled and a started event of the same attempt, or a redelivery, record it once."""
    async with deps.uow(system=True) as uow:
        return await uow.track_running(cmd.attempt)


async def summarize_costs(cmd: commands.SummarizeCosts, deps: Dependencies) -> CostSummary:
    """The organization's costs in a window, grouped (domain/summary.py); running attempts valued now.
    Limited to one project when asked, and always for a project-bound key."""
    by = group_by(cmd.group_by)
    scope = project_scope(cmd.bound_project, cmd.project_id)
    as_of = deps.clock()
    win = window(cmd.start, cmd.end, as_of)
    if scope.nothing:
        return summary(by, win, as_of, cmd.include_running, GroupedSums([], empty_group()))
    async with deps.uow(org_id=cmd.organization_id) as uow:
        sums = await uow.cost_summary(
            cmd.organization_id, by, win, as_of, cmd.include_running, project=scope.project
        )
    return summary(by, win, as_of, cmd.include_running, sums)


async def prune_ended_running(cmd: commands.PruneEndedRunning, deps: Dependencies) -> int:
    """Cross-tenant housekeeping (system scope)."""
    if cmd.retention_hours < 1:
        raise ValueError("retention_hours must be at least 1")
    async with deps.uow(system=True) as uow:
        return await uow.prune_ended_running(deps.clock() - timedelta(hours=cmd.retention_hours))


Handler = Callable[[Any, Dependencies], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    commands.RecordAttemptCost: record_attempt_cost,
    commands.GetJobCost: get_job_cost,
    commands.ListJobCosts: list_job_costs,
    commands.TrackRunningAttempt: track_running_attempt,
    commands.SummarizeCosts: summarize_costs,
    commands.PruneEndedRunning: prune_ended_running,
    commands.ApplyJobEvents: apply_job_events,
}


async def handle(cmd: object, deps: Dependencies) -> Any:
    """Run the handler registered for ``cmd``'s type."""
    return await dispatch(HANDLERS, cmd, deps)
