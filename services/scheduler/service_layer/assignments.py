"""Change signals for the scheduler's streams: per node for the pushed assignment streams
(``WatchAssignments``, :class:`AssignmentFeed`), per job for ``WatchJob`` (:class:`JobFeed`).

Whoever commits a change to what a node should run (a placement, a cancel, a finish, a lost node) calls
:meth:`AssignmentFeed.changed` with the nodes it touched, after the commit: every stream of those nodes
in this process reads its node's list again and sends it when it differs from what it last sent. A
change committed by another replica is not signalled here: one poll per process (every second, one
statement for every watched node: the ids and ``updated_at`` of the jobs live on them) wakes the streams
whose node's jobs moved since the stream read them. A stream reads its list only when woken (and at its
keep-alive), not on a timer of its own: a thousand idle nodes cost one statement a second, not a
thousand transactions. Nothing depends on the signals for correctness, only for latency: the keep-alive
(every ``keepalive_seconds`` of silence) reads the list again too.

A revision names one content of a node's list. It is taken from the wall clock in microseconds when
the content changes (and is always above the previous one and above what the agent says it knows), so
revisions keep increasing across a scheduler restart or a move to another replica; the same content
keeps its revision, so an agent that reconnects with the revision it applied gets that revision back
when nothing changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

log = logging.getLogger("gpufleet.scheduler.feeds")

V = TypeVar("V")


@dataclass
class _Known:
    revision: int
    digest: bytes


class _Signals:
    """Events by id (a node's, a job's), set by :meth:`changed` after a commit that touched the id."""

    def __init__(self) -> None:
        self._watchers: dict[UUID, set[asyncio.Event]] = {}

    def changed(self, ids: Iterable[UUID | None] | None = None) -> None:
        """Wake the streams of these ids (None: of every one). Call it after the commit."""
        if ids is None:
            targets: Iterable[set[asyncio.Event]] = list(self._watchers.values())
        else:
            targets = [self._watchers[i] for i in set(ids) if i is not None and i in self._watchers]
        for events in targets:
            for event in events:
                event.set()

    @contextmanager
    def watch(self, key: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever :meth:`changed` names ``key``, for as long as the stream lasts."""
        event = asyncio.Event()
        self._watchers.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            events = self._watchers.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._watchers[key]

    def watching(self, key: UUID) -> int:
        return len(self._watchers.get(key, ()))


class _Polled(_Signals, Generic[V]):
    """Signals plus, for another replica's commits (not signalled in this process), one task that
    reads the version of every watched id every ``poll_s`` in one statement, whatever the number of
    streams, and wakes the streams of those that moved since their stream last read them (:meth:`saw`).
    A change is never lost between the two: a stream records the version it read, so any later write
    differs from it."""

    what = "ids"

    def __init__(self, poll_s: float = 1.0) -> None:
        super().__init__()
        self.poll_s = poll_s
        self._seen: dict[UUID, V] = {}
        self._poller: asyncio.Task[None] | None = None

    def saw(self, key: UUID, version: V | None) -> None:
        """A stream read ``key`` at this version."""
        if version is not None:
            self._seen[key] = version

    def keep_polling(self, versions: Callable[[list[UUID]], Awaitable[dict[UUID, V]]]) -> None:
        """Run the poll (started once, ended when nothing is watched); ``versions`` reads them."""
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(versions))

    async def _poll(self, versions: Callable[[list[UUID]], Awaitable[dict[UUID, V]]]) -> None:
        while self._watchers:
            await asyncio.sleep(self.poll_s)
            watched = list(self._watchers)
            for key in [k for k in self._seen if k not in self._watchers]:
                del self._seen[key]
            try:
                found = await versions(watched)
            except Exception:
                log.warning("reading the watched %s' versions failed", self.what, exc_info=True)
                continue
            moved = [k for k in watched if found.get(k) != self._seen.get(k)]
            if moved:
                self.changed(moved)


class JobFeed(_Polled[datetime]):
    """Per-job signals for ``WatchJob``. The scheduler's unit of work tells it, after each commit, the
    jobs that commit saved (adapters/repository.py ``on_commit``), whoever saved them (an API call, the
    loop's placements, agents' reports, fleet's events). Another replica's commits are found by the
    poll of the watched jobs' versions (their ``updated_at``)."""

    what = "jobs"


NodeVersion = frozenset[tuple[UUID, datetime | None]]
"""What a node's assignment list was read from: each job live on it, with its ``updated_at`` (every
write of a job moves it; a job placed on or leaving the node changes the set)."""


def node_version(jobs: Iterable[Any]) -> NodeVersion:
    return frozenset((job.id, job.updated_at) for job in jobs)


class AssignmentFeed(_Polled[NodeVersion]):
    what = "nodes"

    def __init__(self, clock_us: Callable[[], int] | None = None, poll_s: float = 1.0) -> None:
        super().__init__(poll_s)
        self._known: dict[UUID, _Known] = {}
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)

    def revision(self, node_id: UUID, digest: bytes, known_revision: int = 0) -> int:
        """The revision of this content of the node's list (a new one when the content changed)."""
        known = self._known.get(node_id)
        if known is not None and known.digest == digest and known.revision >= known_revision:
            return known.revision
        previous = known.revision if known else 0
        revision = max(self._clock_us(), previous + 1, known_revision + 1)
        self._known[node_id] = _Known(revision, digest)
        return revision
