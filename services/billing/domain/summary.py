"""Rules of the cost summary: its window, its grouping, and how its money adds up. No I/O.

The database does the arithmetic over the rows (adapters/summary.py); these rules say what is asked
and how the answer is put together:

* The window is ``[from, to)``, by default the 30 days up to now; at most ``MAX_COST_SUMMARY_DAYS``.
* A cost line (one GPU of one ended attempt) is attributed by time: the part of its GPU time that
  falls on each UTC day, and inside the window, carries that part of its net cost. The parts are cut
  so that they add up exactly: the cost up to an instant ``t`` is ``R(t) = round(net x (t - start) /
  (end - start), 8)``, with ``R(start) = 0`` and ``R(end) = net``, and a part ``[a, b)`` costs
  ``R(b) - R(a)``: whatever the days and windows, the parts of a line sum to the line.
* Credited lines (an attempt lost to infrastructure) have a net of zero and are left out, GPU time
  included: ``gpu_seconds`` is the time the tenant pays for (like a job cost's ``held_seconds``), plus
  the running attempts' time when they are included.
* A running attempt's cost so far is valued at ``as_of`` (the request's instant) per part, exactly,
  and each group's sum is rounded half-even to 8 places, as billed lines are.
* Grouped by project, the key is the job's project id as its events carried it, ``""`` for a job of
  no project (and for every cost recorded before jobs carried one). A summary may be limited to one
  project (domain/projects.py: always for a project-bound key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, cast

from shared.contracts.limits import COST_GROUP_BY, DEFAULT_COST_SUMMARY_DAYS, MAX_COST_SUMMARY_DAYS
from shared.errors import InvalidArgument

from .costs import LINE_QUANTUM, SECONDS_QUANTUM

GroupBy = Literal["day", "gpu_type", "project"]
NO_PROJECT = ""  # the project key of the costs of jobs in no project
CURRENCY = "USD"


def group_by(value: str) -> GroupBy:
    if value not in COST_GROUP_BY:
        raise InvalidArgument(f"group_by must be one of {', '.join(COST_GROUP_BY)}", field="group_by")
    return cast(GroupBy, value)


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive
    end: datetime  # exclusive


def window(start: datetime | None, end: datetime | None, now: datetime) -> Window:
    """The window asked for: ``end`` defaults to ``now``, ``start`` to 30 days before ``end``."""
    end = end or now
    start = start or end - timedelta(days=DEFAULT_COST_SUMMARY_DAYS)
    if start >= end:
        raise InvalidArgument("from must be before to", field="from")
    if end - start > timedelta(days=MAX_COST_SUMMARY_DAYS):
        raise InvalidArgument(f"the window may span at most {MAX_COST_SUMMARY_DAYS} days", field="from")
    return Window(start, end)


def money(value: Decimal | None) -> Decimal:
    return (value or Decimal(0)).quantize(LINE_QUANTUM, rounding=ROUND_HALF_EVEN)


def seconds(value: Decimal | None) -> Decimal:
    return (value or Decimal(0)).quantize(SECONDS_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class CostGroup:
    key: str
    gpu_seconds: Decimal
    cost: Decimal  # ended attempts, net of credits
    running_cost: Decimal  # running attempts, so far
    jobs: int


def empty_group(key: str = "") -> CostGroup:
    """A group with nothing in it (the total of a summary that found no cost)."""
    return CostGroup(key, seconds(None), money(None), money(None), 0)


@dataclass(frozen=True)
class GroupedSums:
    """What the database sums: one row per group and the row over all of them (``total``: its
    ``gpu_seconds`` and ``jobs``; a job can fall in several groups, so these are not the groups' sums)."""

    groups: list[CostGroup]
    total: CostGroup


@dataclass(frozen=True)
class CostSummary:
    group_by: GroupBy
    window: Window
    as_of: datetime
    include_running: bool
    groups: list[CostGroup]
    total: CostGroup
    currency: str = CURRENCY


def summary(
    by: GroupBy, win: Window, as_of: datetime, include_running: bool, sums: GroupedSums
) -> CostSummary:
    """Groups in key order; the total's money is the sum of the groups' (so the answer adds up to the
    last digit), its GPU time and jobs are the database's over the whole window."""
    groups = sorted(sums.groups, key=lambda g: g.key)
    total = CostGroup(
        key="",
        gpu_seconds=sums.total.gpu_seconds,
        cost=sum((g.cost for g in groups), Decimal(0)).quantize(LINE_QUANTUM),
        running_cost=sum((g.running_cost for g in groups), Decimal(0)).quantize(LINE_QUANTUM),
        jobs=sums.total.jobs,
    )
    return CostSummary(by, win, as_of, include_running, groups, total)
