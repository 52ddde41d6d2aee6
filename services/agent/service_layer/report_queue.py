"""Job reports that must reach the scheduler: in order, durably, until acknowledged, many per call.

A report is acknowledged by the scheduler or on the disk before the agent forgets the job it is about
(:meth:`ReportQueue.kept`), so a crash or restart between "the job ended" and "the scheduler knows" loses
nothing: the next agent process sends what the last one left, or finds the job's folder again and reports
it anew (a job still running under its supervisor is reported started again, in case that report died
with the agent). A report is sent at once, without waiting for the disk: the common case, an answer
within milliseconds, costs no fsync at all; a report still unanswered after :data:`ACK_PATIENCE_S`, or
whose call failed, is synced (:meth:`ReportQueue.durable`: one fsync in a worker thread for every report
queued since the last one, a group commit; the event loop never waits on the disk). The scheduler treats
every report as idempotent, so sending one twice (acknowledged, then the agent died before the
acknowledgement was written) is harmless. Everything pending goes in one ``ReportJobs`` call (up to
``batch_max``); while a call is out, new reports wait for the next one, so the batch grows with the
load and a quiet node still sends each report at once. Order holds: the scheduler applies a call's
reports in order and acknowledges a job only when it is done with all of that job's reports in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..adapters import metrics as prom
from ..domain.model import Report
from .ports import ReportStore, Scheduler, Unreachable

log = logging.getLogger("gpufleet.agent.reports")

BATCH_MAX = 500
# How long a finished job waits for its report's acknowledgement before the report is synced instead.
ACK_PATIENCE_S = 0.5


class ReportQueue:
    def __init__(
        self,
        store: ReportStore,
        retry_base: float = 0.5,
        retry_max: float = 10.0,
        batch_max: int = BATCH_MAX,
    ) -> None:
        self._store = store
        self._pending: list[Report] = store.load()
        self._changed = asyncio.Event()
        self._retry_base, self._retry_max, self._batch_max = retry_base, retry_max, batch_max
        self._queued = self._synced = 0  # reports put so far / of those, how many are on the disk
        self._sync_lock = asyncio.Lock()
        self._acked: dict[int, asyncio.Future[None]] = {}  # id(report) -> resolved when acknowledged
        prom.PENDING_REPORTS.set(len(self._pending))
        if self._pending:
            log.info("reports left by a previous run will be sent", extra={"count": len(self._pending)})

    @property
    def pending(self) -> list[Report]:
        return list(self._pending)

    def job_ids(self) -> set[str]:
        return {r.job_id for r in self._pending}

    def put(self, report: Report) -> None:
        """Queue a report: written when this returns, on the disk before it is sent (:meth:`durable`)."""
        self._pending.append(report)
        self._save()
        self._queued += 1
        self._changed.set()

    async def durable(self) -> None:
        """Every report put so far is on the disk when this returns. Callers that come while an fsync
        runs wait for it and share the next one."""
        wanted = self._queued
        async with self._sync_lock:
            if self._synced >= wanted:
                return
            upto = self._queued
            await asyncio.to_thread(self._store.sync)
            self._synced = max(self._synced, upto)

    async def kept(self, report: Report, patience: float = ACK_PATIENCE_S) -> None:
        """Returns once ``report`` (put earlier) cannot be lost any more: the scheduler acknowledged it,
        or, when no acknowledgement came within ``patience`` seconds, it is on the disk."""
        if not any(r is report for r in self._pending):
            return
        acked = self._acked.get(id(report))
        if acked is None:
            acked = self._acked[id(report)] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(acked), patience)
        except TimeoutError:
            await self.durable()
        finally:
            if self._acked.get(id(report)) is acked and acked.done():
                del self._acked[id(report)]

    def _save(self) -> None:
        self._store.save(self._pending)
        prom.PENDING_REPORTS.set(len(self._pending))

    async def run(self, scheduler: Scheduler, node_id: Callable[[], str | None], stop: asyncio.Event) -> None:
        """Send reports until ``stop``; waits while the node is not registered."""
        delay = self._retry_base
        while not stop.is_set():
            current = node_id()
            if not self._pending or current is None:
                await self._wait_for_change(stop, timeout=None if current else 0.2)
                continue
            batch = self._pending[: self._batch_max]
            try:
                acknowledged = await scheduler.send_batch(current, batch)
            except Unreachable as exc:
                log.warning(
                    "could not deliver reports; will retry",
                    extra={"count": len(batch), "reason": str(exc), "retry_in_s": round(delay, 2)},
                )
                await self.durable()  # they may wait a while: on the disk meanwhile
                await self._sleep(stop, delay)
                delay = min(delay * 2, self._retry_max)
                continue
            done = {id(r) for r in batch if r.job_id in acknowledged}
            if not done:
                # Answered, yet done with none of them: do not spin on the same batch.
                await self.durable()
                await self._sleep(stop, delay)
                delay = min(delay * 2, self._retry_max)
                continue
            delay = self._retry_base
            self._pending = [r for r in self._pending if id(r) not in done]
            self._save()
            for key in done & self._acked.keys():
                if not (acked := self._acked.pop(key)).done():
                    acked.set_result(None)
            log.info(
                "reports delivered",
                extra={"count": len(done), "jobs": sorted({r.job_id for r in batch if id(r) in done})},
            )

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
            await self.durable()

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
