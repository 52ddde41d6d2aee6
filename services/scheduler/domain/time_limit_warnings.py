"""The leader's time-limit warnings still to send: a heap by due time, kept in step with the jobs.

The leader tells it, for every job with a time limit it reconciles, when that job's current attempt is
to be warned (:attr:`~.model.Job.time_limit_warning_due`) or that it is not (None: ended, requeued,
warned already). Jobs without a limit never come here. Entries are dropped lazily: a job whose due time
changed or went away leaves its old entry in the heap, skipped when it surfaces, and the heap is rebuilt
from the live entries when the stale ones outnumber them (a long limit on jobs that end early would
otherwise keep them for as long as the limit). Pure: the caller brings the clock.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from uuid import UUID

_SLACK = 64  # stale entries tolerated before the heap is compacted, beyond as many as are live


class DueWarnings:
    def __init__(self) -> None:
        self._due: dict[UUID, datetime] = {}
        self._heap: list[tuple[datetime, UUID]] = []

    def __len__(self) -> int:
        return len(self._due)

    def set(self, job_id: UUID, due: datetime | None) -> None:
        """The job's attempt is to be warned at ``due`` (None: not at all)."""
        if due is None:
            if self._due.pop(job_id, None) is None:
                return
        elif self._due.get(job_id) != due:
            self._due[job_id] = due
            heapq.heappush(self._heap, (due, job_id))
        if len(self._heap) > 2 * len(self._due) + _SLACK:
            self._heap = [(at, j) for j, at in self._due.items()]
            heapq.heapify(self._heap)

    def next_due(self) -> datetime | None:
        """The earliest due time, or None when nothing is to be sent."""
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: datetime) -> list[UUID]:
        """The jobs due by ``now``, earliest first, forgotten here (the caller sends or drops them)."""
        out: list[UUID] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, job_id = heapq.heappop(heap)
            if self._due.get(job_id) == due:
                del self._due[job_id]
                out.append(job_id)
        return out
