"""The scheduling loop: one placement round per wake-up or tick, one transaction per round.

Only one scheduler is active at a time: a round first takes a transaction-level advisory lock and
skips when another replica holds it (replicas are hot standbys that take over within one tick). The
queued jobs are locked FOR UPDATE SKIP LOCKED, so a concurrent cancel either wins (the round does not
see the job) or waits for the round and then sees the job scheduled. Should two rounds ever overlap
anyway, the primary key of gpu_allocations refuses the second booking of a GPU and that round rolls
back as a whole: nothing is published for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..domain.model import GpuAllocation, Job
from ..domain.placement import JobRequest, place
from .handlers import Dependencies

log = logging.getLogger("gpufleet.scheduler.loop")

ROUND_BATCH = 1000


def _request(job: Job) -> JobRequest:
    return JobRequest(
        job_id=job.id,
        organization_id=job.organization_id,
        gpu_count=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type,
        priority=job.priority,
        created_at=job.created_at,
    )


async def schedule_round(deps: Dependencies, batch: int = ROUND_BATCH) -> list[Job]:
    """Place what fits now; returns the jobs scheduled (empty when another replica leads)."""
    scheduled: list[Job] = []
    async with deps.uow(system=True) as uow:
        if not await uow.lead_scheduling():
            return []
        # Free GPUs first: with none free (the usual idle tick) no queued row needs to be locked.
        free = await uow.free_gpus()
        if not free:
            return []
        queued = await uow.queued_jobs(batch)
        if not queued:
            return []
        by_id = {job.id: job for job in queued}
        now = await uow.now()
        for placement in place([_request(job) for job in queued], free):
            job = by_id[placement.job_id]
            allocation = tuple(
                GpuAllocation(
                    gpu_id=g.gpu_id,
                    gpu_index=g.device_index,
                    gpu_type=g.gpu_type,
                    cost_per_hour=g.cost_per_hour,
                )
                for g in placement.gpus
            )
            job.schedule(placement.node_id, allocation, now)
            await uow.hold_gpus(job)
            await uow.save_job(job)
            scheduled.append(job)
    return scheduled


RoundObserver = Callable[[float, int], None]


async def run_scheduling_loop(
    stop: asyncio.Event,
    deps: Dependencies,
    tick_seconds: float,
    observe: RoundObserver | None = None,
    on_failure: Callable[[], None] | None = None,
) -> None:
    """Run rounds until ``stop``; a failed round (database down) is logged and retried next tick.

    ``observe(seconds, placed)`` is told about every round that placed something or took the lock."""
    while not stop.is_set():
        deps.wakeup.clear()  # cleared before the round: a wake-up during it causes another round
        began = time.perf_counter()
        try:
            scheduled = await schedule_round(deps)
            if observe is not None:
                observe(time.perf_counter() - began, len(scheduled))
            if scheduled:
                log.info("scheduled jobs", extra={"jobs": [str(j.id) for j in scheduled]})
        except asyncio.CancelledError:
            raise
        except Exception:
            if on_failure is not None:
                on_failure()
            log.exception("scheduling round failed; retrying")
        # Wakes on a submit or a release, on stop, or after one tick.
        waking = asyncio.create_task(deps.wakeup.wait(tick_seconds))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for t in (waking, stopping):
            t.cancel()
