"""Free capacity during one cycle: the snapshot's node buckets plus what this cycle has taken.

The cycle never writes to the snapshot. It copies the bucket lists (one short list of node keys per
(pool, kind, free count): a few thousand integers for 10,000 GPUs) and records per node what it took,
so finding a node for ``g`` GPUs walks the buckets ``g, g+1, ...`` in node-id order and stops at the
first node whose CPU and RAM also fit: the best fit (fewest free GPUs of that kind left, then least
memory wasted, then lowest node id) without looking at every GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from .model import Kind, Pool, Shape
from .snapshot import Buckets, NodeState, Snapshot, bucket_move

PoolChoice = tuple[Pool, bool]  # (pool, limited: others' dedicated nodes, lent within the owner's limit)
SingleFit = tuple[int, int, int, int, Pool, Kind]  # (left, waste, node key, free before, pool, kind)
GangMember = tuple[int, int, int, Pool]  # (left, node key, free before, pool)
# One (pool, kind) a single-node search looks at: (memory wasted, kind, pool, limited, that pool and
# kind's buckets, who took from them, and for a limited pool the cell holding how many more of its GPUs
# of that type others may take). Worked out once per (pools, kinds, shape) in a cycle, so a search does
# no hashing of UUID-keyed tuples; the bucket lists and cells are shared, updated in place. A plan is
# ordered by memory wasted (stable), so a search stops once no later entry can beat what it found.
PlanEntry = tuple[int, Kind, Pool, bool, Buckets, set[UUID], "list[int] | None"]
PlannedFit = tuple[int, int, PlanEntry]  # (node key, free GPUs of the kind there, where)
GANG_GROUPS_LOOKED_AT = 64  # fabric groups the quick gang search looks at before the full search


class CapacityView:
    def __init__(self, snapshot: Snapshot, read_only: bool = False) -> None:
        """``read_only``: a view of the fleet as the cycle found it, for "did this fit before the cycle
        gave the room away?"; it shares the snapshot's lists and must never ``take``."""
        self.nodes = snapshot.nodes
        self.static_cache = snapshot.static_cache  # per fleet version: cleared when a node changes
        self.kind_nodes = snapshot.kind_nodes
        self.buckets: dict[tuple[Pool, Kind], Buckets] = (
            snapshot.buckets
            if read_only
            else {pk: [list(b) for b in bs] for pk, bs in snapshot.buckets.items()}
        )
        self.cpu_taken: dict[int, int] = {}
        self.ram_taken: dict[int, int] = {}
        # (node key, kind) -> the time limit ends of the GPUs this cycle took there, in take order. A
        # cycle takes each node's free GPUs of a kind front to back (lowest device index first) and
        # frees none, so what it took is always a prefix of the snapshot's free list: no GPU ids to
        # hash, and how far it got is that list's length minus the free count in the buckets.
        self.cycle_held: dict[tuple[int, Kind], list[float]] = {}
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
        k = shape.container
        nodes, cpu_taken, ram_taken, buckets = self.nodes, self.cpu_taken, self.ram_taken, self.buckets
        best: SingleFit | None = None
        best_left = best_waste = 0
        for kind in kinds:
            waste = (kind[1] - m) * g
            for pool, limited in pools:
                b = buckets.get((pool, kind))
                if b is None or len(b) <= g or (limited and room(pool, kind[0]) < g):
                    continue
                for f in range(g, len(b)):
                    left = f - g
                    if best is not None and (left > best_left or (left == best_left and waste > best_waste)):
                        break
                    found = None
                    if c or r or k:
                        for key in b[f]:
                            st = nodes[key]
                            if k and not st.node.container_runtime:
                                continue
                            if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                                continue
                            if r and st.ram_free - ram_taken.get(key, 0) < r:
                                continue
                            found = key
                            break
                    elif b[f]:
                        found = b[f][0]
                    if found is not None:
                        if (
                            best is None
                            or left < best_left
                            or (
                                left == best_left
                                and (waste < best_waste or (waste == best_waste and found < best[2]))
                            )
                        ):
                            best = (left, waste, found, f, pool, kind)
                            best_left, best_waste = left, waste
                        break
        return best

    def plan_single(
        self,
        pools: Sequence[PoolChoice],
        kinds: Sequence[Kind],
        shape: Shape,
        room_cell: Callable[[Pool, str], list[int]],
    ) -> list[PlanEntry]:
        """``room_cell(pool, gpu type)``: the live count of a limited pool's GPUs of that type that
        others may still take."""
        m, g = shape.gpu_memory_mb, shape.gpus_per_node
        plan: list[PlanEntry] = []
        for kind in kinds:
            for pool, limited in pools:
                b = self.buckets.get((pool, kind))
                if b is not None:
                    takers = self.takers.setdefault((pool, kind), set())
                    cell = room_cell(pool, kind[0]) if limited else None
                    plan.append(((kind[1] - m) * g, kind, pool, limited, b, takers, cell))
        plan.sort(key=lambda e: e[0])
        return plan

    def find_planned(self, plan: list[PlanEntry], shape: Shape) -> PlannedFit | None:
        """``find_single`` over a plan: the same best fit (fewest GPUs left, then least memory
        wasted, then lowest node key; on a full tie the entry earlier in the plan's kinds and pools,
        which the plan's stable order by waste keeps first)."""
        self.searches += 1
        g, c, r, k = shape.gpus_per_node, shape.cpu_cores, shape.ram_mb, shape.container
        nodes, cpu_taken, ram_taken = self.nodes, self.cpu_taken, self.ram_taken
        best: PlannedFit | None = None
        best_left = best_waste = best_key = 0
        for entry in plan:
            waste = entry[0]
            if best is not None and best_left == 0 and waste > best_waste:
                break  # every later entry wastes more: none can beat a fit that leaves nothing
            b = entry[4]
            top = len(b)
            if top <= g:
                continue
            cell = entry[6]
            if cell is not None and cell[0] < g:
                continue
            for f in range(g, top):
                level = b[f]
                if not level:
                    continue
                left = f - g
                if best is not None and (left > best_left or (left == best_left and waste > best_waste)):
                    break
                found = -1
                if c or r or k:
                    for key in level:
                        st = nodes[key]
                        if k and not st.node.container_runtime:
                            continue
                        if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                            continue
                        if r and st.ram_free - ram_taken.get(key, 0) < r:
                            continue
                        found = key
                        break
                    if found < 0:
                        continue
                else:
                    found = level[0]
                if (
                    best is None
                    or left < best_left
                    or (
                        left == best_left
                        and (waste < best_waste or (waste == best_waste and found < best_key))
                    )
                ):
                    best = (found, f, entry)
                    best_left, best_waste, best_key = left, waste, found
                break
        return best

    def take_planned(self, fit: PlannedFit, shape: Shape, org: UUID, ends: float) -> tuple[UUID, ...]:
        """``take`` for a fit ``find_planned`` found."""
        key, free, entry = fit
        g = shape.gpus_per_node
        kind = entry[1]
        gpus = self.nodes[key].free[kind]
        start = len(gpus) - free
        chosen = tuple([gpu.id for gpu in gpus[start : start + g]])
        hk = (key, kind)
        held = self.cycle_held.get(hk)
        if held is None:
            self.cycle_held[hk] = [ends] * g
        else:
            held.extend([ends] * g)
            self._release.pop(hk, None)
        bucket_move(entry[4], key, free, free - g)
        if shape.cpu_cores:
            self.cpu_taken[key] = self.cpu_taken.get(key, 0) + shape.cpu_cores
        if shape.ram_mb:
            self.ram_taken[key] = self.ram_taken.get(key, 0) + shape.ram_mb
        entry[5].add(org)
        return chosen

    def find_gang(
        self, pools: Sequence[Pool], kinds: Sequence[Kind], shape: Shape, labels: Sequence[str]
    ) -> tuple[Kind, list[GangMember]] | None:
        """``shape.nodes`` distinct nodes of one kind, preferring ones that share a fabric label (the
        first of ``labels`` that some group satisfies), then the fewest GPUs left over."""
        self.searches += 1
        n, g, c, r, m = shape.nodes, shape.gpus_per_node, shape.cpu_cores, shape.ram_mb, shape.gpu_memory_mb
        k = shape.container
        nodes, cpu_taken, ram_taken = self.nodes, self.cpu_taken, self.ram_taken
        best: tuple[tuple[int, int, int, Kind], Kind, list[GangMember]] | None = None
        for kind in kinds:
            if labels and len(pools) == 1:
                quick = self._gang_exact_fit(pools[0], kind, n, g, c, r, k, labels[0])
                if quick is not None:  # what the full search below would pick for this kind
                    score = (0, 0, (kind[1] - m) * g * n, kind)
                    if best is None or score < best[0]:
                        best = (score, kind, quick)
                    continue
            cands: list[GangMember] = []
            for pool in pools:
                b = self.buckets.get((pool, kind))
                if b is None:
                    continue
                for f in range(g, len(b)):
                    at_f = b[f]
                    if not at_f:
                        continue
                    left = f - g
                    if c or r or k:
                        for key in at_f:
                            st = nodes[key]
                            if k and not st.node.container_runtime:
                                continue
                            if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                                continue
                            if r and st.ram_free - ram_taken.get(key, 0) < r:
                                continue
                            cands.append((left, key, f, pool))
                    else:
                        cands.extend([(left, key, f, pool) for key in at_f])
            if len(cands) < n:
                continue
            if len(pools) > 1:
                cands.sort()  # one pool's buckets already give (left, node key) order
            level, pick = self._fabric_pick(cands, n, labels)
            score = (level, sum(x[0] for x in pick), (kind[1] - m) * g * n, kind)
            if best is None or score < best[0]:
                best = (score, kind, pick)
        return None if best is None else (best[1], best[2])

    def _gang_exact_fit(
        self, pool: Pool, kind: Kind, n: int, g: int, c: int, r: int, k: bool, label: str
    ) -> list[GangMember] | None:
        """The full search's pick when it is a group of the first fabric label with ``n`` nodes that
        have exactly ``g`` free GPUs of ``kind`` (none left over, the best score there is): the first
        such group by label value, its lowest node keys. Looks at the groups in value order (a
        bounded number of them) instead of gathering every node; None: ask the full search."""
        b = self.buckets.get((pool, kind))
        if b is None or len(b) <= g or len(b[g]) < n:
            return None
        ck = ("fabric groups", pool, kind, label)
        groups = self.static_cache.get(ck)
        if groups is None:  # every node of the pool with GPUs of the kind, by label value
            by_value: dict[str, list[int]] = {}
            for key in self.kind_nodes.get((pool, kind), ()):
                value = self.nodes[key].node.labels.get(label)
                if value is not None:
                    by_value.setdefault(value, []).append(key)
            groups = self.static_cache[ck] = [(v, sorted(keys)) for v, keys in sorted(by_value.items())]
        nodes, held, cpu_taken, ram_taken = self.nodes, self.cycle_held, self.cpu_taken, self.ram_taken
        for _, keys in groups[:GANG_GROUPS_LOOKED_AT]:
            if len(keys) < n:
                continue
            pick: list[GangMember] = []
            for key in keys:
                st = nodes[key]
                free = len(st.free.get(kind, ())) - len(held.get((key, kind), ()))
                if free != g:
                    continue
                if k and not st.node.container_runtime:
                    continue
                if c and st.cpu_free - cpu_taken.get(key, 0) < c:
                    continue
                if r and st.ram_free - ram_taken.get(key, 0) < r:
                    continue
                pick.append((0, key, g, pool))
                if len(pick) == n:
                    return pick
        return None

    def _labels(self, labels: Sequence[str]) -> dict[int, tuple[str | None, ...]]:
        """Each node's values of the fabric ``labels`` (None: not labelled so), made once per fleet."""
        ck = ("fabric", tuple(labels))
        cached = self.static_cache.get(ck)
        if cached is None:
            cached = self.static_cache[ck] = {
                key: tuple(st.node.labels.get(label) for label in labels) for key, st in self.nodes.items()
            }
        values: dict[int, tuple[str | None, ...]] = cached
        return values

    def _fabric_pick(
        self, cands: list[GangMember], n: int, labels: Sequence[str]
    ) -> tuple[int, list[GangMember]]:
        values = self._labels(labels)
        for level in range(len(labels)):
            groups: dict[str, list[GangMember]] = {}
            for cand in cands:
                value = values[cand[1]][level]
                if value is not None:
                    members = groups.get(value)
                    if members is None:
                        groups[value] = [cand]
                    else:
                        members.append(cand)
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
        gpus = self.nodes[key].free[kind]
        start = len(gpus) - free
        chosen = tuple([gpu.id for gpu in gpus[start : start + g]])
        hk = (key, kind)
        held = self.cycle_held.get(hk)
        if held is None:
            self.cycle_held[hk] = [ends] * g
        else:
            held.extend([ends] * g)
        self._release.pop(hk, None)
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
        return chosen

    def release_times(self, state: NodeState, kind: Kind) -> list[float]:
        """The node's release times for ``kind`` counting this cycle's placements too."""
        hk = (state.key, kind)
        extra = self.cycle_held.get(hk)
        if not extra:
            return state.release_times(kind)
        times = self._release.get(hk)
        if times is None:
            # the snapshot's times start with one -inf per free GPU; the taken ones now end later
            times = self._release[hk] = sorted(state.release_times(kind)[len(extra) :] + extra)
        return times
