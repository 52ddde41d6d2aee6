"""The scheduler's in-memory state between cycles, updated incrementally.

The service builds one :class:`Snapshot` when it takes the lead (from the database and the agents'
reports) and then calls ``add_job`` / ``remove_job`` / ``allocate`` / ``release`` / ``update_node``
as submits, cancels, finishes and fleet changes arrive. Each update costs about O(log n) (a sorted
insert into one class, one node's buckets), never a rebuild. The cycle reads it without copying it
(it keeps its own overlay of what it takes) and never changes it: the service applies the decisions
afterwards (``apply``).

The indexes:

* ``classes``: waiting (not held) jobs grouped by scheduling class (account, shape), each class's keys
  sorted in queue order (priority high first, then oldest, then id).
* ``buckets[(pool, kind)][f]``: the sorted node keys with exactly ``f`` free healthy GPUs of that kind
  in that pool: finding the best-fitting node for ``g`` GPUs walks ``f = g, g+1, ...`` (at most the
  GPUs per node) instead of every node and GPU.
* running totals per account, per (organization, GPU type) and per user, for fair share, quotas and caps.
* ``Leaf.order``: per leaf account its classes sorted by their first job's key, which a cycle copies as
  that leaf's queue (a sorted list is a heap): no per-class work to set a cycle up.
* ``victims``: per (pool, kind) and organization, the nodes where its running jobs could be asked to
  give lent capacity back (``preemption``), so a reclaim does not walk every running job.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from .decisions import Decision, Place, Preempt, Reclaim, Reject
from .fairshare import decayed
from .model import (
    AccountPath,
    Allocation,
    Gpu,
    JobKey,
    Kind,
    Node,
    NodeShare,
    Pool,
    QueuedJob,
    Shape,
    Usage,
    account_chain,
)

ClassKey = tuple[AccountPath, Shape]
Buckets = list[list[int]]


def bucket_move(buckets: Buckets, key: int, before: int, after: int) -> None:
    """Move node ``key`` from the bucket of ``before`` free GPUs to that of ``after`` (0: no bucket)."""
    if before:
        lst = buckets[before]
        del lst[bisect_left(lst, key)]
    if after:
        while len(buckets) <= after:
            buckets.append([])
        insort(buckets[after], key)


@dataclass(slots=True, eq=False)
class JobClass:
    key: ClassKey
    leaf: AccountPath
    shape: Shape
    shape_id: int  # a small int per distinct shape: cheap to hash in the cycle's memos
    organization: UUID
    keys: list[JobKey] = field(default_factory=list)
    # a cycle's result holds on to ``keys`` (no copy per class per cycle): set by the cycle, and the
    # snapshot then changes a fresh copy instead of the list the result reads
    shared: bool = False

    def own_keys(self) -> list[JobKey]:
        if self.shared:
            self.keys = list(self.keys)
            self.shared = False
        return self.keys


@dataclass(slots=True, eq=False)
class AccountState:
    """One fair-share account's running totals and decayed usage, kept across cycles.

    ``stamp`` and ``account`` are a cycle's scratch: the cycle that last built this account's
    fair-share node, and that node, so a cycle finds it without hashing the UUID-keyed path again."""

    path: AccountPath
    gpus: dict[str, int] = field(default_factory=dict)  # held per GPU type
    cpu: int = 0
    ram: int = 0
    usage: tuple[Usage, datetime] | None = None
    stamp: int = -1
    account: Any = None


@dataclass(slots=True, eq=False)
class Leaf:
    """A leaf account with waiting work: its classes and, worked out once, the accounts above it."""

    path: AccountPath
    organization: UUID
    user: UUID
    chain: tuple[AccountState, ...]  # organization first
    running: list[int]  # the user's [running jobs, GPUs held], shared with the user's other leaves
    classes: dict[Shape, JobClass] = field(default_factory=dict)
    project: UUID | None = None
    project_running: list[int] | None = None  # the project's [running jobs, GPUs held] (``projects``)
    # (first waiting job's key, class) for every class, sorted: a sorted list is a heap, so a cycle
    # copies it as its queue of this leaf's classes instead of building and heapifying one. Keys are
    # unique (they end with the job id), so entries never compare their classes.
    order: list[tuple[JobKey, JobClass]] = field(default_factory=list)
    # a cycle's scratch: (fleet version, pools) under which every class of the leaf passed admission
    admitted: Any = None


@dataclass(slots=True, eq=False)
class NodeState:
    node: Node
    key: int
    pool: Pool
    free: dict[Kind, list[Gpu]]  # healthy, unallocated, in device-index order
    cpu_free: int
    ram_free: int
    held: dict[UUID, float]  # allocated GPU id -> when its job's time limit ends (inf: no limit)
    gpu_kind: dict[UUID, Kind]
    _release: dict[Kind, list[float]] = field(default_factory=dict)
    kind_by_int: dict[int, Kind] = field(default_factory=dict)  # ``gpu_kind`` by ``id.int``: cheap to hash

    def release_times(self, kind: Kind) -> list[float]:
        """When each healthy GPU of ``kind`` is free, sorted: -inf for free now, inf for never known."""
        times = self._release.get(kind)
        if times is None:
            times = sorted(
                self.held.get(g.id, -math.inf)
                for g in self.node.gpus
                if g.healthy and (g.type, g.memory_mb) == kind
            )
            self._release[kind] = times
        return times


class Snapshot:
    def __init__(self) -> None:
        self.jobs: dict[UUID, QueuedJob] = {}
        self.held: dict[UUID, QueuedJob] = {}
        self.classes: dict[ClassKey, JobClass] = {}
        self.leaves: dict[AccountPath, Leaf] = {}  # the classes of each leaf account
        self.shape_ids: dict[Shape, int] = {}
        self.nodes: dict[int, NodeState] = {}
        self.buckets: dict[tuple[Pool, Kind], Buckets] = {}
        self.kind_nodes: dict[tuple[Pool, Kind], set[int]] = {}
        self.gpus_by_type: dict[str, int] = {}
        # Of those, the GPUs that can run something now (what quotas may lend: an offline node's are no room).
        self.healthy_by_type: dict[str, int] = {}
        self.dedicated_gpus: dict[tuple[UUID, str], int] = {}
        self.cpu_total = 0
        self.ram_total = 0
        self.allocations: dict[UUID, Allocation] = {}
        self.shares_by_node: dict[int, dict[UUID, NodeShare]] = {}
        self.accounts: dict[AccountPath, AccountState] = {}
        self.used: dict[tuple[UUID, str], int] = {}  # GPUs held per (organization, type)
        self.dedicated_lent: dict[tuple[UUID, str], int] = {}  # owner's dedicated GPUs held by others
        self.user_running: dict[tuple[UUID, UUID], list[int]] = {}  # (org, user) -> [jobs, gpus]
        self.project_running: dict[tuple[UUID, UUID], list[int]] = {}  # (org, project) -> [jobs, gpus]
        self.fleet_version = 0
        self.static_cache: dict[Any, Any] = {}  # admission answers; valid for one fleet_version
        self._lent_by_job: dict[UUID, list[tuple[UUID, str]]] = {}
        self._held_order: tuple[tuple[UUID, UUID], ...] | None = None
        # preemption: jobs asked to stop for a reclaim (still holding until they report), and the
        # waiting jobs that reclaim (the last cycle's ``CycleResult.reclaims``; see ``quota``)
        self.preempted: set[UUID] = set()
        self.reclaims: dict[UUID, Reclaim] = {}
        # Where a running job could be a reclaim's victim: (pool, kind) -> organization id (``int``)
        # -> node key -> how many of its shares there count. A share counts while its job runs, is
        # not asked to stop and may be preempted, its node is known, and the node is not its own
        # organization's dedicated one (``preemption`` then keeps the borrowing organizations' shared
        # nodes). Kept per job too, to take back on release.
        self.victims: dict[tuple[Pool, Kind], dict[int, dict[int, int]]] = {}
        self._victim_shares: dict[UUID, list[tuple[tuple[Pool, Kind], int, int]]] = {}

    # -- queued jobs ------------------------------------------------------------------------------
    def add_job(self, job: QueuedJob) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} is already queued")
        self.jobs[job.id] = job
        if job.held:
            self.held[job.id] = job
            self._held_order = None
            return
        ck = (job.leaf, job.shape)
        key = job.key
        cls = self.classes.get(ck)
        if cls is None:
            shape_id = self.shape_ids.setdefault(ck[1], len(self.shape_ids))
            cls = self.classes[ck] = JobClass(ck, ck[0], ck[1], shape_id, job.organization)
            leaf = self.leaves.get(ck[0])
            if leaf is None:
                leaf = self.leaves[ck[0]] = self._leaf(job)
            leaf.classes[ck[1]] = cls
            leaf.admitted = None
            cls.keys.append(key)
            insort(leaf.order, (key, cls))
            return
        keys = cls.own_keys()
        if key < keys[0]:  # a new first job: the class moves in its leaf's order
            order = self.leaves[ck[0]].order
            del order[bisect_left(order, (keys[0],))]
            insort(order, (key, cls))
            keys.insert(0, key)
        else:
            insort(keys, key)

    def remove_job(self, job_id: UUID) -> QueuedJob:
        job = self.jobs.pop(job_id)
        self.reclaims.pop(job_id, None)
        if job.held:
            del self.held[job_id]
            self._held_order = None
            return job
        ck = (job.leaf, job.shape)
        cls = self.classes[ck]
        keys = cls.own_keys()
        at = bisect_left(keys, job.key)
        del keys[at]
        if at == 0:  # its first job left: the class moves in (or leaves) its leaf's order
            leaf = self.leaves[ck[0]]
            order = leaf.order
            del order[bisect_left(order, (job.key,))]
            if keys:
                insort(order, (keys[0], cls))
            else:
                del self.classes[ck]
                del leaf.classes[ck[1]]
                leaf.admitted = None
                if not leaf.classes:
                    del self.leaves[ck[0]]
        return job

    def _leaf(self, job: QueuedJob) -> Leaf:
        org = job.organization
        chain = tuple(self.account(p) for p in account_chain(org, job.project, job.user))
        running = self.user_running.setdefault((org, job.user), [0, 0])
        leaf = Leaf(job.leaf, org, job.user, chain, running)
        if job.project is not None:
            leaf.project = job.project
            leaf.project_running = self.project_running.setdefault((org, job.project), [0, 0])
        return leaf

    def account(self, path: AccountPath) -> AccountState:
        state = self.accounts.get(path)
        if state is None:
            state = self.accounts[path] = AccountState(path)
        return state

    def update_job(self, job: QueuedJob) -> None:
        """A queued job changed (priority, hold, release)."""
        self.remove_job(job.id)
        self.add_job(job)

    def held_in_order(self) -> tuple[tuple[UUID, UUID], ...]:
        """(organization, job id) of every held job by id; kept until the held set changes."""
        if self._held_order is None:
            self._held_order = tuple(
                sorted(((j.organization, j.id) for j in self.held.values()), key=lambda t: t[1].int)
            )
        return self._held_order

    # -- fleet ------------------------------------------------------------------------------------
    def update_node(self, node: Node) -> None:
        """Add a node or replace its inventory; GPUs that running jobs hold stay held."""
        old = self.nodes.pop(node.id.int, None)
        if old is not None:
            self._unindex(old)
        self._index(node)
        self.fleet_version += 1
        self.static_cache.clear()

    def remove_node(self, node_id: UUID) -> None:
        """The node left the fleet. Allocations on it stay until the service releases them."""
        old = self.nodes.pop(node_id.int, None)
        if old is not None:
            self._unindex(old)
            self.fleet_version += 1
            self.static_cache.clear()

    def _index(self, node: Node) -> None:
        key = node.id.int
        held: dict[UUID, float] = {}
        cpu_used = ram_used = 0
        for job_id, share in self.shares_by_node.get(key, {}).items():
            ends = _ends_ts(self.allocations[job_id])
            for gid in share.gpu_ids:
                held[gid] = ends
            cpu_used += share.cpu_cores
            ram_used += share.ram_mb
        free: dict[Kind, list[Gpu]] = {}
        for gpu in sorted(node.gpus, key=lambda g: (g.index, g.id.int)):
            if gpu.healthy and gpu.id not in held:
                free.setdefault(gpu.kind, []).append(gpu)
        held = {gid: ends for gid, ends in held.items() if any(g.id == gid for g in node.gpus)}
        state = NodeState(
            node,
            key,
            node.dedicated_to,
            free,
            node.cpu_cores - cpu_used,
            node.ram_mb - ram_used,
            held,
            {g.id: g.kind for g in node.gpus},
            kind_by_int={g.id.int: g.kind for g in node.gpus},
        )
        self.nodes[key] = state
        for job_id in self.shares_by_node.get(key, ()):
            self._victim_add(self.allocations[job_id], only_node=key)
        for kind, gpus in free.items():
            bucket_move(self.buckets.setdefault((state.pool, kind), [[]]), key, 0, len(gpus))
        for gpu in node.gpus:
            self.kind_nodes.setdefault((state.pool, gpu.kind), set()).add(key)
            self.gpus_by_type[gpu.type] = self.gpus_by_type.get(gpu.type, 0) + 1
            if gpu.healthy:
                self.healthy_by_type[gpu.type] = self.healthy_by_type.get(gpu.type, 0) + 1
            # A dedicated node's GPUs are its owner's nominal quota only while they can run anything: an
            # offline or decommissioned node lends nothing and turns its type back into an open pool.
            if state.pool is not None and gpu.healthy:
                dk = (state.pool, gpu.type)
                self.dedicated_gpus[dk] = self.dedicated_gpus.get(dk, 0) + 1
        self.cpu_total += node.cpu_cores
        self.ram_total += node.ram_mb

    def _unindex(self, state: NodeState) -> None:
        for job_id in self.shares_by_node.get(state.key, ()):
            self._victim_drop(job_id, only_node=state.key)
        for kind, gpus in state.free.items():
            if gpus:
                bucket_move(self.buckets[(state.pool, kind)], state.key, len(gpus), 0)
        for gpu in state.node.gpus:
            self.kind_nodes[(state.pool, gpu.kind)].discard(state.key)
            self.gpus_by_type[gpu.type] -= 1
            if gpu.healthy:
                self.healthy_by_type[gpu.type] -= 1
            if state.pool is not None and gpu.healthy:
                self.dedicated_gpus[(state.pool, gpu.type)] -= 1
        self.cpu_total -= state.node.cpu_cores
        self.ram_total -= state.node.ram_mb

    # -- victim index -----------------------------------------------------------------------------
    def _victim_add(self, allocation: Allocation, only_node: int | None = None) -> None:
        if allocation.preempted or not allocation.preemptible:
            return
        org = allocation.organization.int
        entries = self._victim_shares.setdefault(allocation.job_id, [])
        for share in allocation.shares:
            key = share.node_id.int
            if only_node is not None and key != only_node:
                continue
            state = self.nodes.get(key)
            if state is None or not share.gpu_ids:
                continue
            pool = state.pool
            if pool is not None and pool.int == org:
                continue
            kind = state.kind_by_int.get(share.gpu_ids[0].int)
            if kind is None:
                continue
            counts = self.victims.setdefault((pool, kind), {}).setdefault(org, {})
            counts[key] = counts.get(key, 0) + 1
            entries.append(((pool, kind), org, key))

    def _victim_drop(self, job_id: UUID, only_node: int | None = None) -> None:
        entries = self._victim_shares.get(job_id)
        if not entries:
            self._victim_shares.pop(job_id, None)
            return
        kept = []
        for entry in entries:
            pk, org, key = entry
            if only_node is not None and key != only_node:
                kept.append(entry)
                continue
            by_org = self.victims[pk]
            counts = by_org[org]
            if counts[key] > 1:
                counts[key] -= 1
            else:
                del counts[key]
                if not counts:
                    del by_org[org]
                    if not by_org:
                        del self.victims[pk]
        if kept:
            self._victim_shares[job_id] = kept
        else:
            del self._victim_shares[job_id]

    # -- running jobs -----------------------------------------------------------------------------
    def allocate(self, allocation: Allocation) -> None:
        """A job holds GPUs now. Refuses a GPU that is already held (a double booking is a bug)."""
        if allocation.job_id in self.allocations:
            raise ValueError(f"job {allocation.job_id} already holds an allocation")
        for share in allocation.shares:
            state = self.nodes.get(share.node_id.int)
            if state is not None:
                for gid in share.gpu_ids:
                    if gid in state.held:
                        raise ValueError(f"GPU {gid} is already held")
        self.allocations[allocation.job_id] = allocation
        if allocation.preempted:
            self.preempted.add(allocation.job_id)
        ends = _ends_ts(allocation)
        lent: list[tuple[UUID, str]] = []
        org = allocation.organization
        for share in allocation.shares:
            key = share.node_id.int
            self.shares_by_node.setdefault(key, {})[allocation.job_id] = share
            state = self.nodes.get(key)
            if state is None:
                continue
            for gid in share.gpu_ids:
                kind = state.gpu_kind.get(gid)
                if kind is None:
                    continue
                state.held[gid] = ends
                gpus = state.free.get(kind, [])
                for i, gpu in enumerate(gpus):
                    if gpu.id == gid:
                        del gpus[i]
                        bucket_move(self.buckets[(state.pool, kind)], key, len(gpus) + 1, len(gpus))
                        break
                state._release.pop(kind, None)
                if state.pool is not None and state.pool != org:
                    lent.append((state.pool, kind[0]))
            state.cpu_free -= share.cpu_cores
            state.ram_free -= share.ram_mb
        for dk in lent:
            self.dedicated_lent[dk] = self.dedicated_lent.get(dk, 0) + 1
        self._lent_by_job[allocation.job_id] = lent
        self._count(allocation, +1)
        self._victim_add(allocation)

    def release(self, job_id: UUID) -> Allocation:
        """The job no longer holds anything (finished, cancelled, lost)."""
        allocation = self.allocations.pop(job_id)
        self.preempted.discard(job_id)
        for share in allocation.shares:
            key = share.node_id.int
            on_node = self.shares_by_node.get(key, {})
            on_node.pop(job_id, None)
            if not on_node:
                self.shares_by_node.pop(key, None)
            state = self.nodes.get(key)
            if state is None:
                continue
            for gid in share.gpu_ids:
                if state.held.pop(gid, None) is None:
                    continue
                kind = state.gpu_kind[gid]
                gpu = next(g for g in state.node.gpus if g.id == gid)
                state._release.pop(kind, None)
                if gpu.healthy:
                    gpus = state.free.setdefault(kind, [])
                    gpus.append(gpu)
                    gpus.sort(key=lambda g: (g.index, g.id.int))
                    buckets = self.buckets.setdefault((state.pool, kind), [[]])
                    bucket_move(buckets, key, len(gpus) - 1, len(gpus))
            state.cpu_free += share.cpu_cores
            state.ram_free += share.ram_mb
        for dk in self._lent_by_job.pop(job_id, ()):
            self.dedicated_lent[dk] -= 1
        self._count(allocation, -1)
        self._victim_drop(job_id)
        return allocation

    def _count(self, allocation: Allocation, sign: int) -> None:
        org = allocation.organization
        chain = account_chain(org, allocation.project, allocation.user)
        cpu = sum(s.cpu_cores for s in allocation.shares)
        ram = sum(s.ram_mb for s in allocation.shares)
        states = [self.account(path) for path in chain]
        for share in allocation.shares:
            for gpu_type in share.gpu_types:
                uk = (org, gpu_type)
                self.used[uk] = self.used.get(uk, 0) + sign
                for state in states:
                    state.gpus[gpu_type] = state.gpus.get(gpu_type, 0) + sign
        for state in states:
            state.cpu += sign * cpu
            state.ram += sign * ram
        running = self.user_running.setdefault((org, allocation.user), [0, 0])
        running[0] += sign
        running[1] += sign * allocation.gpu_count
        if allocation.project is not None:
            held = self.project_running.setdefault((org, allocation.project), [0, 0])
            held[0] += sign
            held[1] += sign * allocation.gpu_count

    # -- usage ------------------------------------------------------------------------------------
    def record_usage(
        self,
        org: UUID,
        project: UUID | None,
        user: UUID,
        amount: Usage,
        at: datetime,
        half_life_s: float,
    ) -> None:
        """Add resource-seconds an account used (and its parents), decaying what was there to ``at``."""
        for path in account_chain(org, project, user):
            old = self.usage_at(path, at, half_life_s)
            self.account(path).usage = (
                Usage(old.gpu_s + amount.gpu_s, old.cpu_s + amount.cpu_s, old.ram_mb_s + amount.ram_mb_s),
                at,
            )

    def set_usage(self, path: AccountPath, usage: Usage, as_of: datetime) -> None:
        self.account(path).usage = (usage, as_of)

    def usage_at(self, path: AccountPath, now: datetime, half_life_s: float) -> Usage:
        state = self.accounts.get(path)
        return Usage() if state is None else state_usage_at(state, now, half_life_s)

    @property
    def usage(self) -> dict[AccountPath, tuple[Usage, datetime]]:
        """Every recorded (usage, as of) by account."""
        return {path: st.usage for path, st in self.accounts.items() if st.usage is not None}

    # -- applying a cycle -------------------------------------------------------------------------
    def apply(self, decision: Decision, now: datetime) -> None:
        """What the service does once a cycle's decisions are committed."""
        if isinstance(decision, Reject):
            self.remove_job(decision.job_id)
        elif isinstance(decision, Place):
            job = self.remove_job(decision.job_id)
            ends = None if job.time_limit_s is None else now + timedelta(seconds=job.time_limit_s)
            shares = tuple(
                NodeShare(p.node_id, p.gpu_ids, (p.gpu_type,) * len(p.gpu_ids), p.cpu_cores, p.ram_mb)
                for p in decision.allocations
            )
            self.allocate(
                Allocation(
                    job.id,
                    job.organization,
                    job.project,
                    job.user,
                    shares,
                    now,
                    ends,
                    job.priority,
                    preemptible=job.preemptible,
                )
            )
        elif isinstance(decision, Preempt):
            self.mark_preempted(decision.job_id)

    def mark_preempted(self, job_id: UUID) -> None:
        """The job was asked to stop for a reclaim: it holds its GPUs until it reports, and is no
        victim again."""
        allocation = self.allocations.get(job_id)
        if allocation is not None and not allocation.preempted:
            self.allocations[job_id] = replace(allocation, preempted=True)
            self.preempted.add(job_id)
            self._victim_drop(job_id)


def _ends_ts(allocation: Allocation) -> float:
    return math.inf if allocation.ends_at is None else allocation.ends_at.timestamp()


def state_usage_at(state: AccountState, now: datetime, half_life_s: float) -> Usage:
    """An account's usage decayed to ``now``."""
    entry = state.usage
    if entry is None:
        return Usage()
    usage, as_of = entry
    elapsed = (now - as_of).total_seconds()
    return Usage(
        decayed(usage.gpu_s, elapsed, half_life_s),
        decayed(usage.cpu_s, elapsed, half_life_s),
        decayed(usage.ram_mb_s, elapsed, half_life_s),
    )
