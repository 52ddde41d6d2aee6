"""Preemption: an organization takes back the capacity it lent (Kueue's ``reclaimWithinCohort``).

It runs after the walk (``cycle``), over what the walk left: a class that waits for capacity while its
next job would stay inside its organization's nominal quota for a GPU type (so it is not borrowing)
looks for that room among jobs that other organizations run on borrowed capacity:

* on the shared pool, a job of an organization that uses more of the type than its own nominal, and
  only while the GPUs it holds stay within what that organization borrows (so a victim never runs
  within its own organization's nominal quota, counting the victims already stopping);
* on a node dedicated to the waiting job's organization (its nominal), any other organization's job.

Victims on one node are chosen lowest priority first, then the most recently started, then by id;
the set is then pruned from the end so that none could be spared (no more victims than needed on
that node); among the nodes looked at (those with stopping jobs first, then by node id, at most
``SEARCHED_NODES`` per pool and kind, until ``FEASIBLE_NODES`` per gang member would do; a node that
needs no new victim ends the search), the one with the fewest victims (then the fewest GPUs stopped,
then the owner's dedicated nodes, then the lowest node id) wins. A gang victim is preempted as a whole (its
GPUs on every node are freed). Jobs already stopping count as room that is coming, so a reclaim
asks for more victims only when those do not suffice, and two waiting jobs never count on the same
GPU. Jobs that opted out of requeue are never victims. A victim placed less than
``Policy.preemption_grace_s`` ago is counted but not stopped yet.

Nothing is placed onto what a ``Preempt`` frees in the same cycle: the victims' GPUs stay held until
their agents report them stopped; the waiting job carries reason ``reclaiming`` meanwhile, and
``CycleResult.reclaims`` keeps its nominal from being lent again (``quota``). The phase costs nothing
when no organization holds borrowed or lent capacity, and otherwise one pass over the running jobs
plus at most ``RECLAIMS_PER_CYCLE`` bounded searches (the next cycle goes on where this one stopped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from . import reasons
from .decisions import PendingClass, Preempt, Reclaim
from .model import Allocation, Kind, Pool

PREEMPTED_REASON = "preempted: capacity reclaimed by its lender"
_WAITS_FOR_ROOM = frozenset(
    {reasons.NO_CAPACITY, reasons.GANG_NO_CAPACITY, reasons.FAIR_SHARE, reasons.BEHIND_OWN_JOBS}
)

# Bounds on one cycle's work (preemption is not in a hurry: victims take seconds to stop, and the next
# cycle goes on where this one stopped): waiting jobs given room, nodes looked at per (pool, kind) and
# search, feasible nodes compared before one is chosen (per gang member).
RECLAIMS_PER_CYCLE = 16
SEARCHED_NODES = 64
FEASIBLE_NODES = 4

Candidate = tuple[tuple[int, float, int], Allocation, int, int, int]  # (order, job, GPUs, cpu, ram)
NodePick = tuple[int, list[Candidate]]  # (node key, new victims there)


class _Reclaim:
    def __init__(self, c: Any) -> None:
        self.c = c
        self.snap = c.snap
        self.view = c.capacity
        self.ledger = c.quota
        self.policy = c.policy
        self.grace = max(0.0, float(self.policy.preemption_grace_s))
        self.now_ts: float = c.now_ts
        self.borrow_left: dict[tuple[UUID, str], int] = {}
        for org, oq in self.ledger.orgs.items():
            for t, used in oq.used.items():
                b = used - oq.nominal.get(t, 0)
                if b > 0:
                    self.borrow_left[(org, t)] = b
        self.stopping: set[UUID] = set(self.snap.preempted)  # asked to stop, before or in this cycle
        for job_id in self.stopping:
            self._count_out(self.snap.allocations.get(job_id))
        self.spare: dict[tuple[int, Kind], int] = {}  # GPUs that stopping jobs free, not yet counted on
        self.spare_jobs: dict[tuple[int, Kind], set[UUID]] = {}
        self.spare_cpu: dict[int, int] = {}
        self.spare_ram: dict[int, int] = {}
        self.claimed_free: dict[tuple[int, Kind], int] = {}
        self.claimed_cpu: dict[int, int] = {}
        self.claimed_ram: dict[int, int] = {}
        self.claimed: dict[tuple[UUID, str], int] = {}  # nominal counted on by reclaims, per org and type
        for job_id in sorted(self.stopping, key=lambda j: j.int):
            self._add_spare(self.snap.allocations.get(job_id))
        self.index: dict[tuple[Pool, Kind], list[int]] | None = None
        self.failed: set[tuple[UUID, int]] = set()
        self.preempts: list[Preempt] = []
        self.reclaims: dict[UUID, Reclaim] = {}

    # -- bookkeeping ------------------------------------------------------------------------------
    def _types(self, allocation: Allocation) -> dict[str, int]:
        counts: dict[str, int] = {}
        for share in allocation.shares:
            for t in share.gpu_types:
                counts[t] = counts.get(t, 0) + 1
        return counts

    def _count_out(self, allocation: Allocation | None) -> None:
        """A stopping job no longer counts as its organization's borrowing."""
        if allocation is None:
            return
        for t, n in self._types(allocation).items():
            ot = (allocation.organization, t)
            if ot in self.borrow_left:
                self.borrow_left[ot] -= n

    def _add_spare(self, allocation: Allocation | None) -> None:
        if allocation is None:
            return
        for share in allocation.shares:
            key = share.node_id.int
            state = self.snap.nodes.get(key)
            if state is None:
                continue
            for gid in share.gpu_ids:
                kind = state.gpu_kind.get(gid)
                if kind is not None and gid in state.held:
                    hk = (key, kind)
                    self.spare[hk] = self.spare.get(hk, 0) + 1
                    self.spare_jobs.setdefault(hk, set()).add(allocation.job_id)
            self.spare_cpu[key] = self.spare_cpu.get(key, 0) + share.cpu_cores
            self.spare_ram[key] = self.spare_ram.get(key, 0) + share.ram_mb

    def _eligible(self, allocation: Allocation, pool: Pool, org: UUID) -> bool:
        if (
            allocation.organization.int == org.int
            or allocation.preempted
            or not allocation.preemptible
            or allocation.job_id in self.stopping
        ):
            return False
        if pool is not None:
            return True  # on the reclaiming organization's own dedicated node: lent to it
        return all(
            self.borrow_left.get((allocation.organization, t), 0) >= n
            for t, n in self._types(allocation).items()
        )

    def _build_index(self) -> dict[tuple[Pool, Kind], list[int]]:
        """The nodes, per (pool, kind), where a victim or a stopping job could give room: a superset
        (``_eligible`` decides per job), read off the snapshot's ``victims`` (kept as jobs start and
        stop; a placement uses GPUs of one kind, so a share's first GPU says its kind): the shared
        pool's nodes of the organizations that borrow, every dedicated node's others' jobs."""
        found: dict[tuple[Pool, Kind], set[int]] = {}
        snap = self.snap
        borrowing = {org.int for org, _ in self.borrow_left}  # ints: cheap to hash
        nodes = snap.nodes
        for pk, by_org in snap.victims.items():  # the snapshot's index of possible victims
            keys: set[int] = set()
            if pk[0] is None:
                for org, counts in by_org.items():
                    if org in borrowing:
                        keys.update(counts)
            else:
                for counts in by_org.values():  # other organizations' jobs on a dedicated node
                    keys.update(counts)
            if keys:
                found[pk] = keys
        first: dict[tuple[Pool, Kind], set[int]] = {}
        for (key, kind), n in self.spare.items():
            state = nodes.get(key)
            if state is not None and n > 0:
                first.setdefault((state.pool, kind), set()).add(key)
        for pk in first:
            found.setdefault(pk, set())
        return {
            pk: sorted(first.get(pk, ())) + sorted(keys - first.get(pk, set())) for pk, keys in found.items()
        }

    # -- the search -------------------------------------------------------------------------------
    def _pools(self, org: UUID, gpu_type: str) -> list[Pool]:
        pools: list[Pool] = []
        if self.snap.dedicated_gpus.get((org, gpu_type), 0) > 0:
            pools.append(org)
        quota = self.policy.quotas.get((org, gpu_type))
        if quota is not None and quota.nominal > 0:
            pools.append(None)
        return pools

    def _on_node(
        self, key: int, kind: Kind, pool: Pool, org: UUID, g: int, cpu: int, ram: int
    ) -> tuple[tuple[int, int, int, int], list[Candidate]] | None:
        """The fewest victims on this node that give ``g`` GPUs of ``kind`` (and the CPU and RAM),
        with the cost that ranks nodes; None when even all of them would not."""
        snap, view = self.snap, self.view
        state = snap.nodes[key]
        hk = (key, kind)
        free = len(state.free.get(kind, ())) - len(view.cycle_held.get(hk, ())) - self.claimed_free.get(hk, 0)
        supply = free + self.spare.get(hk, 0)
        cpu_av = (
            state.cpu_free
            - view.cpu_taken.get(key, 0)
            - self.claimed_cpu.get(key, 0)
            + self.spare_cpu.get(key, 0)
        )
        ram_av = (
            state.ram_free
            - view.ram_taken.get(key, 0)
            - self.claimed_ram.get(key, 0)
            + self.spare_ram.get(key, 0)
        )
        chosen: list[Candidate] = []
        if supply < g or cpu_av < cpu or ram_av < ram:
            cands: list[Candidate] = []
            for job_id, share in snap.shares_by_node.get(key, {}).items():
                allocation = snap.allocations[job_id]
                if not self._eligible(allocation, pool, org):
                    continue
                by_int = state.kind_by_int
                n = sum(1 for gid in share.gpu_ids if by_int.get(gid.int) == kind)
                order = (allocation.priority, -allocation.started_at.timestamp(), job_id.int)
                cands.append((order, allocation, n, share.cpu_cores, share.ram_mb))
            cands.sort(key=lambda cand: cand[0])
            borrow: dict[tuple[UUID, str], int] = {}
            for cand in cands:
                if supply >= g and cpu_av >= cpu and ram_av >= ram:
                    break
                allocation = cand[1]
                types = self._types(allocation)
                if pool is None:
                    o = allocation.organization
                    if any(
                        self.borrow_left.get((o, t), 0) - borrow.get((o, t), 0) < n for t, n in types.items()
                    ):
                        continue
                    for t, n in types.items():
                        borrow[(o, t)] = borrow.get((o, t), 0) + n
                chosen.append(cand)
                supply += cand[2]
                cpu_av += cand[3]
                ram_av += cand[4]
            if supply < g or cpu_av < cpu or ram_av < ram:
                return None
            for cand in reversed(list(chosen)):  # none that could be spared
                if supply - cand[2] >= g and cpu_av - cand[3] >= cpu and ram_av - cand[4] >= ram:
                    chosen.remove(cand)
                    supply -= cand[2]
                    cpu_av -= cand[3]
                    ram_av -= cand[4]
        cost = (len(chosen), sum(c[2] for c in chosen), 0 if pool is not None else 1, key)
        return cost, chosen

    def _cover(
        self,
        org: UUID,
        kinds: Sequence[Kind],
        nodes: int,
        g: int,
        cpu: int,
        ram: int,
        container: bool = False,
    ) -> Any:
        """The cheapest way to give the job its room: (kind, [(node key, new victims)]); ``container``:
        on nodes with a container runtime only."""
        if self.index is None:
            self.index = self._build_index()
        best: Any = None
        enough = FEASIBLE_NODES * nodes
        for kind in kinds:
            per_node: list[tuple[tuple[int, int, int, int], int, list[Candidate]]] = []
            for pool in self._pools(org, kind[0]):
                # nodes with stopping jobs first; a bounded look at the others (``SEARCHED_NODES``)
                for key in self.index.get((pool, kind), ())[:SEARCHED_NODES]:
                    if container and not self.snap.nodes[key].node.container_runtime:
                        continue
                    found = self._on_node(key, kind, pool, org, g, cpu, ram)
                    if found is not None:
                        per_node.append((found[0], key, found[1]))
                        if len(per_node) >= enough or (nodes == 1 and found[0][0] == 0):
                            break
            if len(per_node) < nodes:
                continue
            per_node.sort(key=lambda p: p[0])
            picks = per_node[:nodes]
            if nodes > 1 and not self._jointly_borrowed([v for p in picks for v in p[2]]):
                continue
            total = (sum(p[0][0] for p in picks), sum(p[0][1] for p in picks), kind)
            if best is None or total < best[0]:
                best = (total, kind, [(p[1], p[2]) for p in picks])
        return None if best is None else (best[1], best[2])

    def _jointly_borrowed(self, victims: list[Candidate]) -> bool:
        """A gang's victims over several nodes still stay within what each organization borrows."""
        seen: set[UUID] = set()
        need: dict[tuple[UUID, str], int] = {}
        for cand in victims:
            allocation = cand[1]
            if allocation.job_id in seen:
                continue
            seen.add(allocation.job_id)
            on_own_dedicated = all(
                (st := self.snap.nodes.get(s.node_id.int)) is not None and st.pool is not None
                for s in allocation.shares
            )
            if on_own_dedicated:
                continue
            for t, n in self._types(allocation).items():
                ot = (allocation.organization, t)
                need[ot] = need.get(ot, 0) + n
        return all(self.borrow_left.get(ot, 0) >= n for ot, n in need.items())

    def _commit(
        self, for_job: UUID, kind: Kind, picks: list[NodePick], g: int, cpu: int, ram: int
    ) -> tuple[int, int]:
        """Count the room as ``for_job``'s; stop the new victims. (jobs it waits for, still in grace)."""
        waits_for: set[UUID] = set()
        in_grace = 0
        for _, victims in picks:
            for cand in victims:
                allocation = cand[1]
                if allocation.job_id in self.stopping:
                    continue
                self.stopping.add(allocation.job_id)
                self._count_out(allocation)
                self._add_spare(allocation)
                if self.now_ts - allocation.started_at.timestamp() >= self.grace:
                    self.preempts.append(
                        Preempt(allocation.job_id, allocation.organization, PREEMPTED_REASON, for_job)
                    )
                else:
                    in_grace += 1
        for key, _ in picks:
            hk = (key, kind)
            state = self.snap.nodes[key]
            free = (
                len(state.free.get(kind, ()))
                - len(self.view.cycle_held.get(hk, ()))
                - self.claimed_free.get(hk, 0)
            )
            from_free = max(0, min(free, g))
            self.claimed_free[hk] = self.claimed_free.get(hk, 0) + from_free
            rest = g - from_free
            if rest:
                self.spare[hk] = self.spare.get(hk, 0) - rest
                waits_for |= self.spare_jobs.get(hk, set())
            self.claimed_cpu[key] = self.claimed_cpu.get(key, 0) + cpu
            self.claimed_ram[key] = self.claimed_ram.get(key, 0) + ram
        return len(waits_for), in_grace

    # -- the phase --------------------------------------------------------------------------------
    def run(self) -> None:
        c, snap, ledger = self.c, self.snap, self.ledger
        waiting: list[PendingClass] = c.waiting
        # per organization (by its quota entry): has it idle nominal left to take back? Only a reclaim
        # changes the answer (``claimed`` grows), so it is asked once per organization until then.
        idle: dict[int, bool] = {}
        for i, record in enumerate(waiting):
            if len(self.reclaims) >= RECLAIMS_PER_CYCLE:
                break
            org, reason, keys, cursor, memo = record
            if reason.code not in _WAITS_FOR_ROOM:
                continue
            oq = ledger.orgs.get(org)
            if oq is None:
                continue
            has_idle = idle.get(id(oq))
            if has_idle is None:
                has_idle = idle[id(oq)] = any(
                    n - oq.used.get(t, 0) - self.claimed.get((org, t), 0) > 0 for t, n in oq.nominal.items()
                )
            if not has_idle:
                continue  # no idle nominal left to take back
            if memo is not None:
                sid = cast("tuple[int, int, int]", memo)[2]  # a capacity memo key ends with the shape id
            else:
                first = snap.jobs.get(keys[cursor][2])
                if first is None:
                    continue
                sid = snap.shape_ids.get(first.shape)
            info = c.shapes.get(sid)
            if info is None or (org, sid) in self.failed:
                continue
            shape, total = info.shape, info.total
            told: tuple[int, int] | None = None
            for j in range(cursor, len(keys)):
                if len(self.reclaims) >= RECLAIMS_PER_CYCLE:
                    break
                kinds = [
                    kind
                    for kind in info.kinds
                    if kind[0] in ledger.managed
                    and oq.used.get(kind[0], 0) + self.claimed.get((org, kind[0]), 0) + total
                    <= oq.nominal.get(kind[0], 0)
                ]
                if not kinds:
                    break
                g, cpu, ram = shape.gpus_per_node, shape.cpu_cores, shape.ram_mb
                found = self._cover(org, kinds, shape.nodes, g, cpu, ram, shape.container)
                if found is None:
                    self.failed.add((org, sid))
                    break
                kind, picks = found
                counted = self._commit(keys[j][2], kind, picks, g, cpu, ram)
                ot = (org, kind[0])
                self.claimed[ot] = self.claimed.get(ot, 0) + total
                idle.clear()
                self.reclaims[keys[j][2]] = (org, kind[0], total)
                if told is None:
                    told = counted
            if told is not None and (told[0] or told[1]):
                stopping, in_grace = told
                why = reasons.reclaiming(max(stopping, in_grace), in_grace, self.grace)
                waiting[i] = (org, why, keys, cursor, memo)


def reclaim(c: Any) -> tuple[list[Preempt], dict[UUID, Reclaim]]:
    """The preemptions of one cycle and the waiting jobs they are for; rewrites the reasons of the
    classes that reclaim. ``c`` is the cycle's state after the walk."""
    if not c.policy.reclaim_lent_capacity or not c.waiting:
        return [], {}
    ledger = c.quota
    borrowing = any(used > oq.nominal.get(t, 0) for oq in ledger.orgs.values() for t, used in oq.used.items())
    if not borrowing and not any(n > 0 for n in c.snap.dedicated_lent.values()) and not c.snap.preempted:
        return [], {}
    phase = _Reclaim(c)
    phase.run()
    return phase.preempts, phase.reclaims
