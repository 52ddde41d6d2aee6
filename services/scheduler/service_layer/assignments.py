"""Per-node change signals and revisions for the pushed assignment streams (``WatchAssignments``).

Whoever commits a change to what a node should run (a placement, a cancel, a finish, a lost node) calls
:meth:`AssignmentFeed.changed` with the nodes it touched, after the commit: every stream of those nodes
in this process reads its node's list again and sends it when it differs from what it last sent. A
change committed by another replica is not signalled here; the streams' periodic re-check (about a
second) catches it. Nothing depends on the signal for correctness, only for latency.

A revision names one content of a node's list. It is taken from the wall clock in microseconds when
the content changes (and is always above the previous one and above what the agent says it knows), so
revisions keep increasing across a scheduler restart or a move to another replica; the same content
keeps its revision, so an agent that reconnects with the revision it applied gets that revision back
when nothing changed meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID


@dataclass
class _Known:
    revision: int
    digest: bytes


class AssignmentFeed:
    def __init__(self, clock_us: Callable[[], int] | None = None) -> None:
        self._watchers: dict[UUID, set[asyncio.Event]] = {}
        self._known: dict[UUID, _Known] = {}
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)

    def changed(self, node_ids: Iterable[UUID | None] | None = None) -> None:
        """Wake the streams of these nodes (None: of every node). Call it after the commit."""
        if node_ids is None:
            targets: Iterable[set[asyncio.Event]] = list(self._watchers.values())
        else:
            targets = [self._watchers[n] for n in set(node_ids) if n is not None and n in self._watchers]
        for events in targets:
            for event in events:
                event.set()

    @contextmanager
    def watch(self, node_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever :meth:`changed` names this node, for as long as the stream lasts."""
        event = asyncio.Event()
        self._watchers.setdefault(node_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._watchers.get(node_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._watchers[node_id]

    def watching(self, node_id: UUID) -> int:
        return len(self._watchers.get(node_id, ()))

    def revision(self, node_id: UUID, digest: bytes, known_revision: int = 0) -> int:
        """The revision of this content of the node's list (a new one when the content changed)."""
        known = self._known.get(node_id)
        if known is not None and known.digest == digest and known.revision >= known_revision:
            return known.revision
        previous = known.revision if known else 0
        revision = max(self._clock_us(), previous + 1, known_revision + 1)
        self._known[node_id] = _Known(revision, digest)
        return revision
