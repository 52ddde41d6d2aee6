"""Caches kept fresh in the background while they are used.

The policy, the limits and the fleet's capacity summary are read again at most every ``refresh_s``
(a change made through another replica, or by fleet, is taken in within that). Read on demand, the
first submit after the last read aged past ``refresh_s`` waits for it: on a quiet system that is nearly
every submit, three small transactions before its own. :class:`KeptFresh` reloads such a cache every
``refresh_s * 0.7`` while it was used in the last ``keep_s``, so a submit finds it younger than
``refresh_s`` and reads nothing; a cache not used for ``keep_s`` costs nothing until its next use,
which reads on demand as before. A reload that fails ends the keeper (the next use starts another), so
nothing keeps reading a database that is down or gone.

Keeper tasks are named ``keep-fresh-<cache>``; whoever owns the cache closes it (``close()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("gpufleet.scheduler.freshness")

KEEP_SECONDS = 120.0
PERIOD_OF_REFRESH = 0.7  # reload period as a share of refresh_s: the age a user finds stays below it


class KeptFresh:
    def __init__(
        self,
        reload: Callable[[], Awaitable[object]],
        refresh_s: float,
        *,
        keep_s: float = KEEP_SECONDS,
        what: str = "cache",
    ) -> None:
        self._reload = reload
        self._period = refresh_s * PERIOD_OF_REFRESH
        self._keep_s = keep_s
        self._what = what
        self._last_used = -float("inf")
        self._task: asyncio.Task[None] | None = None

    def used(self) -> None:
        """The cache was just used: keep it fresh for ``keep_s`` more."""
        self._last_used = time.monotonic()
        if self._period > 0 and (self._task is None or self._task.done()):
            # A context of its own: not the trace (nor the audit call) of the request that first used it.
            self._task = asyncio.get_running_loop().create_task(
                self._keep(), name=f"keep-fresh-{self._what}", context=contextvars.Context()
            )

    async def _keep(self) -> None:
        while time.monotonic() - self._last_used < self._keep_s:
            await asyncio.sleep(self._period)
            try:
                await self._reload()
            except Exception as exc:
                # The database away (or gone): stop here rather than retry into it every period. The
                # next use reads on demand, which reports the failure to its caller, and starts a keeper
                # again.
                log.debug("background refresh failed", extra={"cache": self._what, "error": repr(exc)})
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
