"""Wakes this process's event streams when any replica stores an event: PostgreSQL LISTEN/NOTIFY.

``SqlUnitOfWork.append_event`` issues ``pg_notify(EVENT_CHANNEL, organization_id)`` in the storing
transaction, which PostgreSQL delivers only when (and if) it commits. This listener holds one pooled
connection on ``LISTEN`` and turns each notification into :meth:`EventSignal.notify` for that
organization. While it is not connected (database down, connection lost) streams still catch up on
their heartbeat, and every (re)connection wakes all streams once, since notifications sent meanwhile are
gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from shared.db import Database

from ..service_layer.event_stream import EventSignal
from .repository import EVENT_CHANNEL

log = logging.getLogger("gpufleet.notification.events")

# How often the held connection is checked (a dead TCP peer is otherwise noticed only on use).
CHECK_SECONDS = 30.0


class PgEventListener:
    def __init__(self, db: Database, signal: EventSignal, *, retry_seconds: float = 2.0) -> None:
        self.db, self.signal, self.retry_seconds = db, signal, retry_seconds
        self.listening = asyncio.Event()  # set while LISTEN is in force (tests wait on it)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``; never raises for the database's failures (a runtime task)."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event notifications lost; reconnecting", extra={"error": repr(exc)[:300]})
            finally:
                self.listening.clear()
            self.signal.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_seconds)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with self.db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            pg: Any = raw.driver_connection  # the asyncpg connection
            lost = asyncio.Event()

            def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                try:
                    organization_id = UUID(payload)
                except ValueError:
                    return
                self.signal.notify(organization_id)

            def on_terminate(_conn: Any) -> None:
                lost.set()

            await pg.add_listener(EVENT_CHANNEL, on_notify)
            pg.add_termination_listener(on_terminate)
            self.listening.set()
            self.signal.notify_all()  # whatever was stored before LISTEN took effect
            try:
                while not stop.is_set() and not lost.is_set():
                    stopping = asyncio.create_task(stop.wait())
                    dropped = asyncio.create_task(lost.wait())
                    try:
                        await asyncio.wait(
                            {stopping, dropped}, timeout=CHECK_SECONDS, return_when="FIRST_COMPLETED"
                        )
                    finally:
                        stopping.cancel()
                        dropped.cancel()
                    if not stop.is_set() and not lost.is_set():
                        await pg.execute("SELECT 1")  # raises when the connection is gone
                if lost.is_set():
                    raise ConnectionError("the listening connection was closed")
            finally:
                pg.remove_termination_listener(on_terminate)
                with contextlib.suppress(Exception):
                    await pg.remove_listener(EVENT_CHANNEL, on_notify)
