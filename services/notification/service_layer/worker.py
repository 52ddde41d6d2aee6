"""The delivery worker: claim due deliveries, sign and send them outside any transaction, record.

Claiming commits before sending (with the rows' ``next_attempt_at`` pushed one lease ahead), so no
transaction stays open during a slow HTTP call and a worker that dies mid-send leaves deliveries that
fall due again when the lease ends: delivery is at least once. Receivers de-duplicate on the
``webhook-id`` header, which is the same for every attempt of a delivery.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..domain import signing
from ..domain.model import SendResult
from ..domain.retry import RetryPolicy
from . import handlers
from .unit_of_work import DueDelivery, Sender, UnitOfWorkFactory
from .wakeup import Wakeup

log = logging.getLogger("gpufleet.notification.worker")


class DeliveryWorker:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sender: Sender,
        policy: RetryPolicy,
        wakeup: Wakeup,
        *,
        concurrency: int = 16,
        lease: timedelta = timedelta(seconds=60),
        poll_seconds: float = 5.0,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.uow, self.sender, self.policy, self.wakeup = uow, sender, policy, wakeup
        self.concurrency, self.lease, self.poll_seconds = concurrency, lease, poll_seconds
        self._rand, self._clock = rand, clock

    async def deliver(self, due: DueDelivery) -> None:
        """One attempt of one claimed delivery, recorded. Errors are logged: the lease retries it."""
        d = due.delivery
        started = self._clock()
        try:
            if due.secret is None:
                result = SendResult(None, "no signing secret for this delivery", 0, permanent=True)
            else:
                headers = signing.signed_headers(due.secret, str(d.id), started, d.payload)
                result = await self.sender.send(d.url, headers, d.payload)
            await handlers.record_delivery_result(self.uow, d.id, result, started, self.policy, self._rand)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "delivery attempt failed to complete; it is retried when its lease ends",
                extra={"delivery_id": str(d.id)},
            )

    async def run_once(self) -> int:
        """Claim up to ``concurrency`` due deliveries and make one attempt at each; returns how many."""
        claimed = await handlers.claim_due_deliveries(self.uow, self.concurrency, self.lease)
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
                    self.wakeup.clear()  # before claiming: a wake-up during the claim is not lost
                    try:
                        claimed = await handlers.claim_due_deliveries(self.uow, free, self.lease)
                        for due in claimed:
                            task = asyncio.create_task(self.deliver(due), name=f"delivery-{due.delivery.id}")
                            in_flight.add(task)
                            task.add_done_callback(in_flight.discard)
                        if len(claimed) == free:
                            continue  # there may be more due; the loop waits only when slots are full
                        timeout = await self._idle_timeout()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("claiming deliveries failed; retrying")
                        timeout = self.poll_seconds
                waiters: set[asyncio.Future] = {stopping, *in_flight}
                wake = asyncio.create_task(self.wakeup.wait()) if free > 0 else None
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

    async def _idle_timeout(self) -> float:
        due_in = await handlers.seconds_until_next_due(self.uow)
        if due_in is None:
            return self.poll_seconds
        return min(max(due_in, 0.01), self.poll_seconds)
