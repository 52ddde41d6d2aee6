"""Job reports that must reach the scheduler: in order, durably, until acknowledged.

A report is persisted before anyone waits on it, so a crash or restart between "the job ended" and
"the scheduler knows" loses nothing: the next agent process sends what the last one left. The
scheduler treats every report as idempotent, so sending one twice (acknowledged, then the agent died
before it could forget it) is harmless. Delivery is strictly first-in first-out: a job's "finished"
never overtakes its "started".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..domain.model import JobFinished, JobStarted, Report
from .ports import ReportRejected, ReportStore, Scheduler, Unreachable

log = logging.getLogger("gpufleet.agent.reports")


class ReportQueue:
    def __init__(self, store: ReportStore, retry_base: float = 0.5, retry_max: float = 10.0) -> None:
        self._store = store
        self._pending: list[Report] = store.load()
        self._changed = asyncio.Event()
        # Set when a "finished" report is acknowledged: the scheduler has just freed GPUs on this node and
        # is placing the next jobs, so asking for assignments now beats waiting out the poll interval.
        self.gpus_released = asyncio.Event()
        self._retry_base, self._retry_max = retry_base, retry_max
        if self._pending:
            log.info("reports left by a previous run will be sent", extra={"count": len(self._pending)})

    @property
    def pending(self) -> list[Report]:
        return list(self._pending)

    def job_ids(self) -> set[str]:
        return {r.job_id for r in self._pending}

    def put(self, report: Report) -> None:
        """Queue a report; it is on disk when this returns."""
        self._pending.append(report)
        self._store.save(self._pending)
        self._changed.set()

    async def run(self, scheduler: Scheduler, node_id: Callable[[], str | None], stop: asyncio.Event) -> None:
        """Send reports until ``stop``; waits while the node is not registered."""
        delay = self._retry_base
        while not stop.is_set():
            current = node_id()
            if not self._pending or current is None:
                await self._wait_for_change(stop, timeout=None if current else 0.2)
                continue
            report = self._pending[0]
            try:
                await scheduler.send(current, report)
            except ReportRejected as exc:
                log.warning(
                    "the scheduler rejected a report; dropping it",
                    extra={"job_id": report.job_id, "report": _kind(report), "reason": str(exc)},
                )
            except Unreachable as exc:
                log.warning(
                    "could not deliver a report; will retry",
                    extra={
                        "job_id": report.job_id,
                        "report": _kind(report),
                        "reason": str(exc),
                        "retry_in_s": round(delay, 2),
                    },
                )
                await self._sleep(stop, delay)
                delay = min(delay * 2, self._retry_max)
                continue
            else:
                log.info("report delivered", extra={"job_id": report.job_id, "report": _kind(report)})
                if isinstance(report, JobFinished):
                    self.gpus_released.set()
            delay = self._retry_base
            self._pending.pop(0)
            self._store.save(self._pending)

    async def flush(self, scheduler: Scheduler, node_id: str | None, timeout: float) -> None:
        """Best effort at shutdown: try to deliver what is pending within ``timeout`` (the rest stays on disk)."""
        if not self._pending or node_id is None:
            return
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(scheduler, lambda: node_id, stop))
        try:
            async with asyncio.timeout(timeout):
                while self._pending and not task.done():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning(
                "reports still pending at shutdown; kept on disk", extra={"count": len(self._pending)}
            )
        finally:
            stop.set()
            self._changed.set()
            await task

    async def _wait_for_change(self, stop: asyncio.Event, timeout: float | None) -> None:
        self._changed.clear()
        waiters = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass


def _kind(report: Report) -> str:
    if isinstance(report, JobStarted):
        return "started"
    assert isinstance(report, JobFinished)
    return "cancelled" if report.cancelled else "finished"
