"""Estimated start: the earliest time the running jobs' time limits free enough fitting GPUs.

For each node of a fitting kind its GPUs' release times are known (free now, the end of the time limit
of the job holding it, or never when that job has no limit); the node could take ``g`` GPUs at the
``g``-th earliest of them, and a gang of ``n`` at the ``n``-th earliest over nodes. CPU and RAM are
left out and jobs ahead in the queue are not simulated, so this is a lower bound: "not before", which
is what a user can plan with (a job naming an image counts only nodes with a container runtime). The per-node times are computed once per (pool, kind, GPUs) in a cycle,
so its cost grows with distinct shapes, not with classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from heapq import nsmallest

from .capacity import CapacityView
from .model import Kind, Pool, Shape
from .snapshot import Snapshot


class Estimator:
    def __init__(self, snapshot: Snapshot, view: CapacityView) -> None:
        self.snap = snapshot
        self.view = view
        self.times: dict[tuple[Pool, Kind, int, bool], list[float]] = {}
        self.released: dict[tuple[Pool, Kind, bool], list[list[float]]] = {}
        self.answers: dict[tuple[object, ...], float | None] = {}

    def earliest(self, pools: Sequence[Pool], kinds: tuple[Kind, ...], shape: Shape) -> float | None:
        """A POSIX time, or None when no set of running jobs with time limits would make room."""
        key = (tuple(pools), kinds, shape.nodes, shape.gpus_per_node, shape.container)
        if key in self.answers:
            return self.answers[key]
        n = shape.nodes
        best = math.inf
        for kind in kinds:
            times: list[float] = []
            for pool in pools:
                times += self._node_times(pool, kind, shape.gpus_per_node, shape.container)
            if len(times) >= n:
                best = min(best, min(times) if n == 1 else nsmallest(n, times)[-1])
        answer = None if best == math.inf else best
        self.answers[key] = answer
        return answer

    def _node_times(self, pool: Pool, kind: Kind, g: int, container: bool = False) -> list[float]:
        """When each node of (pool, kind) could next hold ``g`` GPUs (nodes never able: left out);
        ``container``: nodes with a container runtime only."""
        key = (pool, kind, g, container)
        times = self.times.get(key)
        if times is None:
            index = g - 1
            times = self.times[key] = [
                r[index]
                for r in self._released(pool, kind, container)
                if len(r) > index and r[index] < math.inf
            ]
        return times

    def _released(self, pool: Pool, kind: Kind, container: bool) -> list[list[float]]:
        """Every node's sorted release times for (pool, kind), fetched once for all GPU counts."""
        pk = (pool, kind, container)
        lists = self.released.get(pk)
        if lists is None:
            nodes, view = self.snap.nodes, self.view
            lists = self.released[pk] = [
                view.release_times(nodes[k], kind)
                for k in self.snap.kind_nodes.get((pool, kind), ())
                if not container or nodes[k].node.container_runtime
            ]
        return lists
