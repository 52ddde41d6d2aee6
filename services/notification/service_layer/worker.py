"""The delivery worker: claim due deliveries, sign and send them outside any transaction, record.

Claiming commits before sending (with the rows' ``next_attempt_at`` pushed one lease ahead), so no
transaction stays open during a slow HTTP call and a worker that dies mid-send leaves deliveries that
fall due again when the lease ends: delivery is at least once. Receivers de-duplicate on the
``webhook-id`` header: the event's CloudEvent id, the same for every attempt of a delivery.

Two retry loops live here, both with tenacity and both apart from the persisted per-delivery schedule
(``domain/retry.py``, which decides when a *target* is tried again): claiming retries while the
database is unreachable (the worker is a runtime task, and a task that raises takes the process down),
and recording an attempt's result retries a few times, because a result that is never recorded makes
the lease send the same message again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
)

from ..domain.events import CONTENT_TYPE
from ..domain.model import Outcome, SendResult
from ..domain.signing import InvalidSecret
from . import commands
from .handlers import Dependencies, handle
from .unit_of_work import DueDelivery, Sender, Signer

log = logging.getLogger("gpufleet.notification.worker")

RECORD_TRIES = 3


class DeliveryWorker:
    def __init__(
        self,
        deps: Dependencies,
        sender: Sender,
        signer: Signer,
        *,
        concurrency: int = 16,
        lease: timedelta = timedelta(seconds=60),
        poll_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.deps, self.sender, self.signer = deps, sender, signer
        self.concurrency, self.lease, self.poll_seconds = concurrency, lease, poll_seconds
        self._clock = clock
        self._measured_at = float("-inf")
        self._due_at: float | None = None  # monotonic: when the last measurement said the next is due
        self._rescheduled = False  # an attempt recorded since then set a retry: measure again
        self._recorder = _GroupCommit(deps)

    async def attempt(self, due: DueDelivery, started: datetime) -> SendResult:
        """Sign (as of ``started``) and send one claimed delivery; never raises for the target's
        failures."""
        d = due.delivery
        if due.secret is None:
            return SendResult(None, "no signing secret for this delivery", 0, permanent=True)
        try:
            # The webhook-id is the event's CloudEvent id: the same on every attempt and for every
            # target of the event, and the id the topic, the event stream and the body carry.
            also = (due.previous_secret,) if due.previous_secret else ()
            headers = self.signer.headers(due.secret, str(d.event_id), started, d.payload, also=also)
        except InvalidSecret as exc:
            return SendResult(None, f"cannot sign: {exc}", 0, permanent=True)
        began = time.monotonic()
        result = await self.sender.send(d.url, {**headers, "content-type": CONTENT_TYPE}, d.payload)
        self.deps.metrics.attempt_seconds(time.monotonic() - began)
        return result

    async def deliver(self, due: DueDelivery) -> None:
        """One attempt of one claimed delivery, recorded. Errors are logged: the lease retries it.

        The result is recorded together with those of the attempts that completed meanwhile (one
        transaction for all of them, :class:`_GroupCommit`); if that transaction fails, this result
        is recorded alone, with a few tries."""
        d = due.delivery
        started = self._clock()
        try:
            result = await self.attempt(due, started)
            record = commands.RecordDeliveryResult(d.id, result, started)
            try:
                outcome = await self._recorder.record(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(RECORD_TRIES),
                    wait=wait_exponential(multiplier=0.2, max=2.0),
                    retry=retry_if_exception_type(Exception),
                    reraise=True,
                ):
                    with attempt:
                        outcome = await handle(record, self.deps)
            if outcome is Outcome.RETRYING:
                self._rescheduled = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "delivery attempt failed to complete; it is retried when its lease ends",
                extra={"delivery_id": str(d.id)},
            )

    async def run_once(self) -> int:
        """Claim up to ``concurrency`` due deliveries and make one attempt at each; returns how many."""
        claimed = await handle(commands.ClaimDueDeliveries(self.concurrency, self.lease), self.deps)
        await asyncio.gather(*(self.deliver(d) for d in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 10.0) -> None:
        """Keep up to ``concurrency`` attempts in flight until ``stop``; a slow target holds one slot,
        not a whole batch."""
        in_flight: set[asyncio.Task] = set()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.concurrency - len(in_flight)
                timeout: float | None = None
                if free > 0:
                    self.deps.wakeup.clear()  # before claiming: a wake-up during the claim is not lost
                    claimed = await self._claim(free, stop)
                    for due in claimed:
                        task = asyncio.create_task(self.deliver(due), name=f"delivery-{due.delivery.id}")
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    if len(claimed) == free:
                        if time.monotonic() - self._measured_at >= self.poll_seconds:
                            await self._idle_timeout()  # saturated: the backlog gauge still moves
                        continue  # there may be more due; the loop waits only when slots are full
                    timeout = await self._idle_timeout()
                waiters: set[asyncio.Future] = {stopping, *in_flight}
                wake = asyncio.create_task(self.deps.wakeup.wait()) if free > 0 else None
                if wake is not None:
                    waiters.add(wake)
                try:
                    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if wake is not None:
                        wake.cancel()
        finally:
            stopping.cancel()
            if in_flight:
                # Let attempts under way finish (they are bounded by the HTTP timeout), then give up:
                # what is cut off is retried after its lease.
                _, pending = await asyncio.wait(set(in_flight), timeout=grace_seconds)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _claim(self, limit: int, stop: asyncio.Event) -> list[DueDelivery]:
        """Claim, retrying with capped backoff while it fails (database down); [] once stopping."""

        def stopped(_: RetryCallState) -> bool:
            return stop.is_set()

        async def sleep(seconds: float) -> None:  # a stop cuts the backoff short
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        def warn(state: RetryCallState) -> None:
            log.warning(
                "claiming deliveries failed; retrying",
                exc_info=state.outcome.exception() if state.outcome else None,
                extra={"tries": state.attempt_number},
            )

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential_jitter(multiplier=0.2, max=self.poll_seconds, jitter=0.2),
                stop=stopped,
                sleep=sleep,
                before_sleep=warn,
                reraise=True,
            ):
                with attempt:
                    claimed: list[DueDelivery] = await handle(
                        commands.ClaimDueDeliveries(limit, self.lease), self.deps
                    )
                    return claimed
        except Exception:
            if stop.is_set():
                return []  # the retry stops only when stopping
            raise
        return []

    async def _measure(self) -> float | None:
        """Refresh the backlog gauge; seconds until the next delivery is due (None: nothing pending)."""
        self._rescheduled = False  # before reading: a retry recorded during the read is not lost
        summary = await handle(commands.MeasurePending(), self.deps)
        self._measured_at = time.monotonic()
        due_in: float | None = summary.next_due_in
        self._due_at = None if due_in is None else self._measured_at + due_in
        return due_in

    async def _idle_timeout(self) -> float:
        """How long to wait for a wake-up (new deliveries, a finished attempt) before claiming again.

        The schedule is read again only when it may have moved: once per ``poll_seconds`` (other
        replicas' work, the gauge), when an attempt recorded here set a retry, or when the time the last
        reading named has come. Otherwise the last reading still holds: new deliveries wake the loop
        anyway, and what this worker claimed comes back through its own recording."""
        now = time.monotonic()
        fresh = now - self._measured_at < self.poll_seconds
        if fresh and not self._rescheduled and (self._due_at is None or self._due_at > now):
            left = self._measured_at + self.poll_seconds - now
            return max(min(left, self._due_at - now if self._due_at is not None else left), 0.01)
        try:
            due_in = await self._measure()
        except Exception:
            log.exception("reading the delivery schedule failed; polling")
            return self.poll_seconds
        if due_in is None:
            return self.poll_seconds
        return min(max(due_in, 0.01), self.poll_seconds)


class _GroupCommit:
    """Records attempts' results in as few transactions as the database's pace allows: the first
    result to arrive is recorded at once; those that complete while that transaction runs wait and go
    together in the next one (in completion order), and so on. Each caller gets its own outcome, or
    the exception its batch failed with (nothing of that batch was recorded)."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.queue: list[tuple[commands.RecordDeliveryResult, asyncio.Future[Outcome | None]]] = []
        self.busy = False

    async def record(self, cmd: commands.RecordDeliveryResult) -> Outcome | None:
        future: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self.queue.append((cmd, future))
        if not self.busy:
            await self._drain()
        return await future

    async def _drain(self) -> None:
        self.busy = True
        batch: list[tuple[commands.RecordDeliveryResult, asyncio.Future[Outcome | None]]] = []
        try:
            while self.queue:
                batch, self.queue = self.queue, []
                try:
                    outcomes = await handle(
                        commands.RecordDeliveryResults(tuple(cmd for cmd, _ in batch)), self.deps
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():  # done: its caller was cancelled meanwhile
                            future.set_exception(exc)
                else:
                    for (_, future), outcome in zip(batch, outcomes, strict=True):
                        if not future.done():
                            future.set_result(outcome)
                batch = []
        finally:
            self.busy = False
            # Cancelled mid-batch (shutting down): the others record alone, or their lease retries them.
            for _, future in [*batch, *self.queue]:
                if not future.done():
                    future.set_exception(RecordingInterrupted("the batch recording was cancelled"))
            self.queue = []


class RecordingInterrupted(Exception):
    """The transaction that was to record this result was cancelled before it committed."""
