"""One scheduling step against the real database, as the service's loop runs it."""

from __future__ import annotations

import weakref

from services.scheduler.domain.model import Job
from services.scheduler.service_layer.handlers import Dependencies
from services.scheduler.service_layer.scheduling import Scheduler

_SCHEDULERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def schedule_round(deps: Dependencies, holder: str = "integration-leader") -> list[Job]:
    """A step of the scheduler of ``deps`` (kept across calls, so its snapshot is updated
    incrementally). Every test's leader has the same holder name, so a test does not wait for the
    lease a previous test's leader left behind; a replica under another name is a standby."""
    scheduler = _SCHEDULERS.get(deps.uow)
    if scheduler is None:
        scheduler = _SCHEDULERS[deps.uow] = Scheduler(deps, holder)
    report = await scheduler.step()
    return report.placed if report is not None else []
