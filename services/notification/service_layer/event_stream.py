"""The live event stream: what the log holds after the cursor, then new events as they are stored,
with a heartbeat whenever nothing was sent for a while.

No polling: a stream sleeps on :class:`EventSignal` until its organization's log grows. The signal is
set in-process by the consumers after they commit (``handlers``) and, for events stored by another
replica, by the LISTEN/NOTIFY listener (``adapters/event_listener.py``). The heartbeat timer doubles
as a safety net: each beat reads the log once more, so a lost notification delays an event by at most
one heartbeat interval.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

from ..domain.event_log import LoggedEvent
from . import commands
from .unit_of_work import EventPage

# Events read per query: a reconnect after a long gap is sent in pages of this many.
PAGE = 200


class EventSignal:
    """Per-organization wake-ups for the streams of this process."""

    def __init__(self) -> None:
        self._waiters: dict[UUID, set[asyncio.Event]] = defaultdict(set)

    @contextmanager
    def listen(self, organization_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever ``organization_id``'s log may have grown (clear it before reading)."""
        event = asyncio.Event()
        self._waiters[organization_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(organization_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[organization_id]

    def notify(self, organization_id: UUID) -> None:
        for event in self._waiters.get(organization_id, ()):
            event.set()

    def notify_all(self) -> None:
        """After the listener reconnected: notifications may have been missed meanwhile."""
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def listening(self) -> int:
        return sum(len(w) for w in self._waiters.values())


@dataclass(frozen=True)
class Heartbeat:
    """Nothing to send for a while (or the stream has just opened): the gateway writes ``: heartbeat``."""


StreamItem = LoggedEvent | Heartbeat
ReadPage = Callable[[commands.ReadEvents], Awaitable[EventPage]]


Check = Callable[[], Awaitable[None]]


async def _no_check() -> None:
    pass


async def stream(
    start: commands.ReadEvents,
    read: ReadPage,
    signal: EventSignal,
    *,
    heartbeat_seconds: float,
    check: Check = _no_check,
    check_seconds: float = float("inf"),
) -> AsyncIterator[StreamItem]:
    """Yield a first heartbeat (the stream is open: the caller's request was valid), then every event
    after ``start.after`` in log order, forever; a heartbeat after each ``heartbeat_seconds`` without
    an event. ``check()`` runs every ``check_seconds`` (while idle too); what it raises ends the
    stream (the caller's key was revoked). Ends otherwise only when the consumer stops iterating."""
    after = start.after
    clock = asyncio.get_running_loop().time
    with signal.listen(start.organization_id) as woken:
        yield Heartbeat()
        sent_at = clock()
        check_at = sent_at + check_seconds
        while True:
            woken.clear()  # before reading: a store that commits during the read wakes the next wait
            while True:
                page = await read(
                    commands.ReadEvents(
                        start.organization_id, after, start.types, start.job_id, start.limit, start.project_id
                    )
                )
                for event in page.events:
                    yield event
                    sent_at = clock()
                after = page.position
                if len(page.events) < start.limit:
                    break
            while True:  # until woken (read again) or a heartbeat is due (then read again: a safety net)
                now = clock()
                if now >= check_at:
                    await check()
                    check_at = now + check_seconds
                # Wake-ups that brought nothing this stream sends (other jobs, other types) do not put
                # the heartbeat off: it is due heartbeat_seconds after whatever was sent last.
                heartbeat_at = sent_at + heartbeat_seconds
                if now >= heartbeat_at:
                    yield Heartbeat()
                    sent_at = clock()
                    break
                try:
                    await asyncio.wait_for(woken.wait(), min(heartbeat_at, check_at) - now)
                    break
                except TimeoutError:
                    continue
