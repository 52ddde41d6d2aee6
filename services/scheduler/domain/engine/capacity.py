"""Free capacity during one cycle: the snapshot's node buckets plus what this cycle has taken.

The cycle never writes to the snapshot. It copies the bucket lists (one short list of node keys per
(pool, kind, free count): a few thousand integers for 10,000 GPUs) and records per node what it took,
so finding a node for ``g`` GPUs walks the buckets ``g, g+1, ...`` in node-id order and stops at the
first node whose CPU and RAM also fit: the best fit (fewest free GPUs of that kind left, then least
memory wasted, then lowest node id) without looking at every GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from uuid import UUID

from .model import Kind, Pool, Shape
from .snapshot import Buckets, NodeState, Snapshot, bucket_move

PoolChoice = tuple[Pool, bool]  # (pool, limited: others' dedicated nodes, lent within the owner's limit)
SingleFit = tuple[int, int, int, int, Pool, Kind]  # (left, waste, node key, free before, pool, kind)
GangMember = tuple[int, int, int, Pool]  # (left, node key, free before, pool)


class CapacityView:
    def __init__(self, snapshot: Snapshot, read_only: bool = False) -> None:
        """``read_only``: a view of the fleet as the cycle found it, for "did this fit before the cycle
        gave the room away?"; it shares the snapshot's lists and must never ``take``."""
        self.nodes = snapshot.nodes
        self.buckets: dict[tuple[Pool, Kind], Buckets] = (
            snapshot.buckets
            if read_only
            else {pk: [list(b) for b in bs] for pk, bs in snapshot.buckets.items()}
        )
        self.taken: set[UUID] = set()
        self.cpu_taken: dict[int, int] = {}
        self.ram_taken: dict[int, int] = {}
        self.cycle_held: dict[int, dict[UUID, float]] = {}  # node key -> GPU -> time limit end
        self.takers: dict[tuple[Pool, Kind], set[UUID]] = {}
        self.searches = 0
        self._release: dict[tuple[int, Kind], list[float]] = {}

    def find_single(
        self,
        pools: Sequence[PoolChoice],
        kinds: Sequence[Kind],
        shape: Shape,
        room: Callable[[Pool, str], int],
    ) -> SingleFit | None:
        self.searches += 1
        g, c, r, m = shape.gpus_per_node, shape.cpu_cores, shape.ram_mb, shape.gpu_memory_mb
        nodes, cpu_taken, ram_taken, buckets = self.nodes, self.cpu_taken, self.ram_taken, self.buckets
        best: SingleFit | None = None
        for kind in kinds:
            waste = (kind[1] - m) * g
            for pool, limited in pools:
                b = buckets.get((pool, kind))
                if b is None or (limited and room(pool, kind[0]) < g):
                    continue
                for f in range(g, len(b)):
                    left = f - g
                    if best is not None and (left, waste) > (best[0], best[1]):
                        break
                    found = False
                    for key in b[f]:
                        st = nodes[key]
                        if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                            continue
                        if r and st.ram_free - ram_taken.get(key, 0) < r:
                            continue
                        cand = (left, waste, key, f, pool, kind)
                        if best is None or cand[:3] < best[:3]:
                            best = cand
                        found = True
                        break
                    if found:
                        break
        return best

    def find_gang(
        self, pools: Sequence[Pool], kinds: Sequence[Kind], shape: Shape, labels: Sequence[str]
    ) -> tuple[Kind, list[GangMember]] | None:
        """``shape.nodes`` distinct nodes of one kind, preferring ones that share a fabric label (the
        first of ``labels`` that some group satisfies), then the fewest GPUs left over."""
        self.searches += 1
        n, g, c, r, m = shape.nodes, shape.gpus_per_node, shape.cpu_cores, shape.ram_mb, shape.gpu_memory_mb
        nodes, cpu_taken, ram_taken = self.nodes, self.cpu_taken, self.ram_taken
        best: tuple[tuple[int, int, int, Kind], Kind, list[GangMember]] | None = None
        for kind in kinds:
            cands: list[GangMember] = []
            for pool in pools:
                b = self.buckets.get((pool, kind))
                if b is None:
                    continue
                for f in range(g, len(b)):
                    for key in b[f]:
                        st = nodes[key]
                        if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                            continue
                        if r and st.ram_free - ram_taken.get(key, 0) < r:
                            continue
                        cands.append((f - g, key, f, pool))
            if len(cands) < n:
                continue
            cands.sort()
            level, pick = self._fabric_pick(cands, n, labels)
            score = (level, sum(x[0] for x in pick), (kind[1] - m) * g * n, kind)
            if best is None or score < best[0]:
                best = (score, kind, pick)
        return None if best is None else (best[1], best[2])

    def _fabric_pick(
        self, cands: list[GangMember], n: int, labels: Sequence[str]
    ) -> tuple[int, list[GangMember]]:
        for level, label in enumerate(labels):
            groups: dict[str, list[GangMember]] = {}
            for cand in cands:
                value = self.nodes[cand[1]].node.labels.get(label)
                if value is not None:
                    groups.setdefault(value, []).append(cand)
            chosen: tuple[tuple[int, str], list[GangMember]] | None = None
            for value, members in groups.items():
                if len(members) >= n:
                    score = (sum(x[0] for x in members[:n]), value)
                    if chosen is None or score < chosen[0]:
                        chosen = (score, members[:n])
            if chosen is not None:
                return level, chosen[1]
        return len(labels), cands[:n]

    def take(
        self, key: int, pool: Pool, kind: Kind, free: int, shape: Shape, org: UUID, ends: float
    ) -> tuple[UUID, ...]:
        """Take ``shape.gpus_per_node`` GPUs of ``kind`` (lowest device index first) on one node."""
        g = shape.gpus_per_node
        taken = self.taken
        chosen: list[UUID] = []
        for gpu in self.nodes[key].free[kind]:
            if gpu.id not in taken:
                chosen.append(gpu.id)
                if len(chosen) == g:
                    break
        taken.update(chosen)
        held = self.cycle_held.setdefault(key, {})
        for gid in chosen:
            held[gid] = ends
        bucket_move(self.buckets[(pool, kind)], key, free, free - g)
        if shape.cpu_cores:
            self.cpu_taken[key] = self.cpu_taken.get(key, 0) + shape.cpu_cores
        if shape.ram_mb:
            self.ram_taken[key] = self.ram_taken.get(key, 0) + shape.ram_mb
        takers = self.takers.get((pool, kind))
        if takers is None:
            self.takers[(pool, kind)] = {org}
        else:
            takers.add(org)
        return tuple(chosen)

    def release_times(self, state: NodeState, kind: Kind) -> list[float]:
        """The node's release times for ``kind`` counting this cycle's placements too."""
        extra = self.cycle_held.get(state.key)
        if not extra:
            return state.release_times(kind)
        memo = (state.key, kind)
        times = self._release.get(memo)
        if times is None:
            times = self._release[memo] = sorted(
                extra.get(g.id, state.held.get(g.id, -math.inf))
                for g in state.node.gpus
                if g.healthy and (g.type, g.memory_mb) == kind
            )
        return times
