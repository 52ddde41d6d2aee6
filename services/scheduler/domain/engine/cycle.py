"""One scheduling cycle: ``cycle(snapshot, policy, now) -> CycleResult``. Pure and deterministic.

The walk (Armada's queue scheduler, over Slurm's fair tree):

1. Admission: a class no node of the fleet could ever hold is rejected as a whole (or, with
   ``Policy.reject_never_fitting`` off, waits with reason ``never_fits``).
2. Fair share picks where the next GPUs go: the organization with the lowest weighted dominant share,
   inside it the project or user with the lowest share, down to a leaf account; there the class whose
   first job comes first in queue order (priority, then age, then id). Priority therefore orders jobs
   only inside one account and never lets one tenant jump another's share.
3. That job is tried: per-user caps, then quota (per GPU type), then capacity (best fit on one node, or
   all-or-nothing over ``nodes`` nodes preferring a shared fabric label). Placed: the accounts on its
   path are pushed back with their new, higher shares, and its class offers its next job. Not placed:
   the whole class is done for this cycle with that reason. No job is ever skipped for a later job of
   its own class, and a blocked class never holds up another class (backfill across classes).
4. The cycle ends when every class has drained or failed, so it costs about
   (classes + placements) x (log accounts + a bucket walk), not jobs x GPUs. Capacity only shrinks
   during a cycle, so a capacity failure is remembered per (pools, kinds, shape) and every later class
   that asks the same fails in O(1).

5. Preemption (``preemption``): a class still waiting for room while its next job would stay inside
   its organization's nominal quota takes lent capacity back: ``Preempt`` decisions for the fewest
   borrowing jobs of other organizations that give it the room, and reason ``reclaiming``. It runs
   after the walk and places nothing onto what it frees (the victims hold their GPUs until their
   agents report them stopped), so the walk's "capacity only shrinks" memo stays valid.
"""

from __future__ import annotations

import gc
import itertools
import math
from datetime import UTC, datetime
from heapq import heapify, heappop, heappush
from typing import Any
from uuid import UUID

from . import reasons
from .admission import never_fits
from .capacity import CapacityView, PlanEntry, PoolChoice
from .decisions import (
    CycleResult,
    CycleStats,
    Decision,
    NodePlacement,
    PendingClass,
    PendingOutcomes,
    PendingReason,
    Place,
    Reject,
)
from .estimate import Estimator
from .fairshare import Account, mean_life
from .model import Kind, Pool, Shape
from .policy import Policy, UserCap
from .preemption import reclaim
from .projects import ProjectRun, project_run
from .quota import OrgQuota, QuotaLedger
from .snapshot import AccountState, JobClass, Snapshot, state_usage_at

_CAPACITY_CODES = frozenset(
    {reasons.NO_CAPACITY, reasons.GANG_NO_CAPACITY, reasons.FAIR_SHARE, reasons.BEHIND_OWN_JOBS}
)
_UNKNOWN: Any = object()
_STAMPS = itertools.count()


def cycle(snapshot: Snapshot, policy: Policy, now: datetime) -> CycleResult:
    # A cycle allocates some hundred thousand small containers (heap entries, records, decisions) and
    # makes no reference cycles: what it drops, reference counting frees. Left on, the cyclic collector
    # would run dozens of times per cycle, each time walking the young result lists for nothing (a
    # third of a fill cycle's time, and most of the steady state's slowest cycles). It is paused for
    # the cycle (the service runs it in a worker thread: the event loop's own garbage waits those
    # milliseconds) and resumed as it was; what the result keeps is collected afterwards as usual.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _Cycle(snapshot, policy, now).run()
    finally:
        if paused:
            gc.enable()


class _ShapeRun:
    """One distinct shape during one cycle: what every class of that shape asks, worked out once."""

    __slots__ = (
        "allowed",
        "cpu",
        "gang",
        "kinds",
        "kinds_id",
        "managed",
        "ram",
        "shape",
        "shape_id",
        "total",
        "types",
        "vkey",
    )

    def __init__(
        self,
        shape: Shape,
        shape_id: int,
        kinds: tuple[Kind, ...],
        kinds_id: int,
        managed: tuple[str, ...],
    ) -> None:
        self.shape = shape
        self.shape_id = shape_id
        self.kinds = kinds
        self.kinds_id = kinds_id
        self.managed = managed  # the quota-managed GPU types among ``kinds``
        self.total = shape.total_gpus
        self.gang = shape.nodes > 1
        self.cpu = shape.cpu_cores * shape.nodes
        self.ram = shape.ram_mb * shape.nodes
        self.vkey = (kinds_id, self.total)  # quota verdicts depend on the kinds and the GPU count only
        self.types = tuple(dict.fromkeys(k[0] for k in kinds))  # distinct GPU types, in kinds order
        # which of ``types`` quota admits (bit i: ``types[i]``) -> (the kinds left, their kinds id)
        self.allowed: dict[int, tuple[tuple[Kind, ...], int]] = {}


class _OrgRun:
    """One organization during one cycle: where it may place and its quota standing."""

    __slots__ = (
        "admission",
        "admission_gang",
        "admission_single",
        "admitted",
        "bounds",
        "gang_pools",
        "org",
        "quota",
        "reasons",
        "sig",
        "single_pools",
        "token",
        "verdicts",
    )

    def __init__(
        self,
        org: UUID,
        single: tuple[PoolChoice, ...],
        gang: tuple[Pool, ...],
        sig: int,
        quota: OrgQuota,
        admission: dict[int, str | None],
    ):
        self.org = org
        self.single_pools = single
        self.gang_pools = gang
        self.admission_single = tuple(p for p, _ in single)
        self.admission_gang = gang
        self.sig = sig  # organizations with the same pools (and limits) share memos
        self.quota = quota
        self.admission = admission  # shape id -> never-fits answer, shared by one signature's orgs
        self.token = (self.admission_single, gang)  # what admission depends on besides the fleet
        self.verdicts: dict[tuple[int, int], PendingReason] = {}  # quota refusals, by kinds and GPUs
        # quota admissions: (``_Cycle.quota_version`` then, kinds left, their id); valid while no
        # placement of a managed type came since
        self.admitted: dict[tuple[int, int], tuple[int, tuple[Kind, ...], int]] = {}
        self.bounds: dict[str, tuple[float, float, float]] = {}  # per managed type (``_bounds``)
        # capacity memo key -> the reason its classes wait: the memo's failure is fixed once known,
        # so the reason is too (it depends on that failure and this organization only)
        self.reasons: dict[tuple[int, int, int], PendingReason] = {}


class _UserRun:
    __slots__ = ("cap", "gpus", "jobs")

    def __init__(self, cap: UserCap | None, jobs: int, gpus: int) -> None:
        self.cap = cap
        self.jobs = jobs
        self.gpus = gpus


class _Cycle:
    def __init__(self, snapshot: Snapshot, policy: Policy, now: datetime) -> None:
        self.snap = snapshot
        self.policy = policy
        self.now = now
        self.now_ts = now.timestamp()
        self.capacity = CapacityView(snapshot)
        self.initial = CapacityView(snapshot, read_only=True)
        self.quota = QuotaLedger(snapshot, policy)
        self.weights = {t: policy.weight(t) for t in snapshot.gpus_by_type}
        gpu_capacity = sum(n * self.weights[t] for t, n in sorted(snapshot.gpus_by_type.items()))
        self.cap = (
            max(gpu_capacity, 1e-9),
            float(max(snapshot.cpu_total, 1)),
            float(max(snapshot.ram_total, 1)),
        )
        self.decisions: list[Decision] = []
        self.waiting: list[PendingClass] = []  # in walk order
        self.never_fitting: list[PendingClass] = []
        # capacity failures per (pools signature, allowed kinds id, shape id): did it fit before the
        # cycle began, and who took the room since
        self.capacity_failed: dict[tuple[int, int, int], tuple[bool, frozenset[UUID]]] = {}
        self.no_capacity_reasons: dict[int, PendingReason] = {}
        self.made_reasons: dict[tuple[Any, ...], PendingReason] = {}
        self.quota_version = 0  # placements of quota-managed GPU types so far
        self.shapes: dict[int, _ShapeRun] = {}
        self.plans: dict[tuple[int, int, int], list[PlanEntry]] = {}  # by capacity memo key
        self.kinds_ids: dict[tuple[Kind, ...], int] = {}
        self.orgruns: dict[UUID, _OrgRun] = {}
        self.signatures: dict[tuple[PoolChoice, ...], int] = {}
        self.admissions: dict[int, dict[int, str | None]] = {}
        self.all_kinds = sorted({kind for _, kind in snapshot.kind_nodes}, key=lambda k: (k[1], k[0]))
        owners = sorted({o for o, _ in self.quota.dedicated}, key=lambda o: o.int)
        self.owners = set(owners)
        self.lenders = [o for o in owners if self.quota.lends_dedicated(o)]
        self.rejected = 0
        self.tau = mean_life(policy.half_life_s)
        self.stamp = next(_STAMPS)  # marks the snapshot's account states this cycle built nodes for

    # -- set-up -----------------------------------------------------------------------------------
    def _shape(self, shape: Shape, shape_id: int) -> _ShapeRun:
        kinds = tuple(
            k
            for k in self.all_kinds
            if (shape.gpu_type is None or k[0] == shape.gpu_type) and k[1] >= shape.gpu_memory_mb
        )
        managed = tuple(sorted({k[0] for k in kinds if k[0] in self.quota.managed}))
        info = self.shapes[shape_id] = _ShapeRun(shape, shape_id, kinds, self._kinds_id(kinds), managed)
        return info

    def _kinds_id(self, kinds: tuple[Kind, ...]) -> int:
        return self.kinds_ids.setdefault(kinds, len(self.kinds_ids))

    def _orgrun(self, org: UUID) -> _OrgRun:
        own: tuple[Pool, ...] = (None, org) if org in self.owners else (None,)
        single = tuple((p, False) for p in own) + tuple((o, True) for o in self.lenders if o != org)
        # the limited flags belong in the signature: an owner's own dedicated pool is not limited for
        # it, while the same pool is for a borrower, so their capacity failures differ
        sig = self.signatures.setdefault(single, len(self.signatures))
        admission = self.admissions.setdefault(sig, {})
        run = self.orgruns[org] = _OrgRun(org, single, own, sig, self.quota.of(org), admission)
        return run

    def _account(self, state: AccountState) -> Account:
        usage = state_usage_at(state, self.now, self.policy.half_life_s)
        per_type = state.gpus
        weights = self.weights
        gpus = sum(n * weights.get(t, 1.0) for t, n in sorted(per_type.items())) if per_type else 0
        tau = self.tau
        return Account(
            state.path,
            self.policy.shares(state.path),
            usage.gpu_s / tau + gpus,
            usage.cpu_s / tau + state.cpu,
            usage.ram_mb_s / tau + state.ram,
        )

    def _build(self) -> Account:
        """The fair-share tree over the accounts with waiting work, one leaf at a time. Per class
        this costs a dict lookup or two and one heap entry: what a class asks is worked out per
        distinct shape, admission per (shape, pools), the user's standing per leaf; the accounts
        above a leaf are the snapshot's, found without hashing their paths."""
        root = Account(("root",), 1.0, 0.0, 0.0, 0.0)
        accounts: list[Account] = [root]
        users: dict[int, _UserRun] = {}
        projects: dict[tuple[UUID, UUID], ProjectRun] = {}  # capped projects (``projects``)
        stamp = self.stamp
        snap, policy, orgruns = self.snap, self.policy, self.orgruns
        fleet = snap.fleet_version
        for leaf in snap.leaves.values():
            org = leaf.organization
            orgrun = orgruns.get(org) or self._orgrun(org)
            token = orgrun.token
            if leaf.admitted is not None and leaf.admitted[0] == fleet and leaf.admitted[1] == token:
                # every class passed admission before, on this fleet and these pools: the leaf's
                # sorted (first key, class) list is its queue as it is
                entries = list(leaf.order)
            else:
                admission = orgrun.admission
                entries = []
                for entry in leaf.order:
                    cls = entry[1]
                    sid = cls.shape_id
                    why = admission.get(sid, _UNKNOWN)
                    if why is _UNKNOWN:
                        shape = cls.shape
                        pools = orgrun.admission_gang if shape.nodes > 1 else orgrun.admission_single
                        why = admission[sid] = never_fits(snap, shape, pools)
                    if why is None:
                        entries.append(entry)  # in key order still: a heap
                    else:
                        self._never_fits(cls, orgrun, why)
                if len(entries) == len(leaf.order):
                    leaf.admitted = (fleet, token)
                if not entries:
                    continue
            parent = root
            for state in leaf.chain:
                if state.stamp == stamp:
                    acc = state.account
                else:
                    acc = state.account = self._account(state)
                    state.stamp = stamp
                    accounts.append(acc)
                    parent.children.append(acc)  # made a heap below, once every sibling is known
                parent = acc
            running = leaf.running
            userrun = users.get(id(running))  # one list per (organization, user), shared by its leaves
            if userrun is None:
                userrun = users[id(running)] = _UserRun(
                    policy.user_cap(org, leaf.user), running[0], running[1]
                )
            parent.classes = entries
            parent.orgrun = orgrun
            parent.user = userrun
            parent.project = project_run(policy, org, leaf.project, leaf.project_running, projects)
        cap = self.cap
        for acc in accounts:
            if acc.children:
                acc.children = [(c.share(cap), c.order, c) for c in acc.children]
                heapify(acc.children)
        return root

    def _never_fits(self, cls: JobClass, orgrun: _OrgRun, why: str) -> None:
        reason = reasons.never_fits(why)
        if self.policy.reject_never_fitting:
            org = cls.organization
            self.decisions.extend(Reject(key[2], org, reason) for key in cls.keys)
            self.rejected += len(cls.keys)
        else:
            cls.shared = True
            self.never_fitting.append((cls.organization, reason, cls.keys, 0, None))

    # -- the walk ---------------------------------------------------------------------------------
    def run(self) -> CycleResult:
        root = self._build()
        self.decisions.sort(key=lambda d: d.job_id.int)  # rejections, in a stable order
        cg, cc, cr = self.cap
        orgs = root.children
        placements = 0
        try_class = self._try
        while orgs:
            # Descend along the lowest shares to a leaf, then try its classes in queue order. A
            # failure changes no share, so the same path stays the minimum: keep trying the leaf's
            # next class (and, once the leaf is spent, the parent's next child) without touching the
            # heaps above. Only a placement changes shares; then the path is pushed back.
            path = [heappop(orgs)[2]]
            placed = False
            while path and not placed:
                acc = path[-1]
                if acc.classes:
                    entry = heappop(acc.classes)
                    cls = entry[1]
                    cursor = entry[2] if len(entry) > 2 else 0  # the snapshot's entries: first job
                    if try_class(cls, cursor, acc, path):
                        placed = True
                        placements += 1
                        cursor += 1
                        keys = cls.keys
                        if cursor < len(keys):
                            heappush(acc.classes, (keys[cursor], cls, cursor))
                elif acc.children:
                    path.append(heappop(acc.children)[2])
                else:
                    path.pop()  # spent: not pushed back
            for i in range(len(path) - 1, -1, -1):
                child = path[i]
                if child.children or child.classes:
                    # ``Account.share``, inline (it runs for every account on every placed path)
                    share = max(child.gpu / cg, child.cpu / cc, child.ram / cr) * child.inv_shares
                    heappush(path[i - 1].children if i else orgs, (share, child.order, child))
        preempts, reclaims = reclaim(self)
        self.decisions.extend(preempts)
        never = sorted(self.never_fitting, key=lambda w: w[2][0])
        outcomes = PendingOutcomes([*never, *self.waiting], self._starts())
        stats = CycleStats(
            len(self.snap.classes), placements, self.rejected, self.capacity.searches, len(preempts)
        )
        return CycleResult(tuple(self.decisions), outcomes, self.snap.held_in_order(), stats, reclaims)

    def _try(self, cls: JobClass, cursor: int, leaf: Account, path: list[Account]) -> bool:
        info: _ShapeRun | None = self.shapes.get(cls.shape_id)
        if info is None:
            info = self._shape(cls.shape, cls.shape_id)
        total = info.total
        user: _UserRun = leaf.user
        orgrun: _OrgRun = leaf.orgrun
        cap = user.cap
        if cap is not None:
            most = cap.max_running_jobs
            if most is not None and user.jobs + 1 > most:
                return self._fail(cls, cursor, self._reason(reasons.user_cap_jobs, most))
            most = cap.max_gpus
            if most is not None and user.gpus + total > most:
                return self._fail(cls, cursor, self._reason(reasons.user_cap_gpus, most, user.gpus, total))
        project: ProjectRun | None = leaf.project
        if project is not None:
            capped = project.blocks(total)
            if capped is not None:
                return self._fail(cls, cursor, capped)
        allowed, allowed_id = info.kinds, info.kinds_id
        quota = self.quota
        if info.managed:
            # Within a cycle quota only tightens (an org's use and the cohort's free room only move
            # one way), so a refusal stays valid, with the reason it was given first; an admission
            # holds until the next placement of a managed type, then is worked out again from the
            # organization's bounds (``_bounds``), a few comparisons.
            vkey = info.vkey
            blocked = orgrun.verdicts.get(vkey)
            if blocked is not None:  # ``_fail``, inline: most classes of a full fleet end here
                cls.shared = True
                self.waiting.append((cls.organization, blocked, cls.keys, cursor, None))
                return False
            admitted = orgrun.admitted.get(vkey)
            if admitted is not None and admitted[0] == self.quota_version:
                allowed, allowed_id = admitted[1], admitted[2]
            else:
                allowed, blocked, allowed_id = self._quota_verdict(orgrun, info)
                if blocked is not None:
                    orgrun.verdicts[vkey] = blocked
                    return self._fail(cls, cursor, blocked)
                orgrun.admitted[vkey] = (self.quota_version, allowed, allowed_id)
        memo = (orgrun.sig, allowed_id, cls.shape_id)
        failed = self.capacity_failed.get(memo)
        if failed is not None:  # ``_fail``, inline: or here
            reason = orgrun.reasons.get(memo) or self._memo_reason(orgrun, memo, failed, info)
            cls.shared = True
            self.waiting.append((cls.organization, reason, cls.keys, cursor, memo))
            return False
        shape = info.shape
        job_id = cls.keys[cursor][2]
        limit = self.snap.jobs[job_id].time_limit_s
        ends = float("inf") if limit is None else self.now_ts + limit
        view = self.capacity
        org = cls.organization
        if info.gang:
            found = view.find_gang(orgrun.gang_pools, allowed, shape, self.policy.fabric_labels)
            if found is None:
                failed = self._remember_failure(info, orgrun, allowed, memo)
                return self._fail(cls, cursor, self._memo_reason(orgrun, memo, failed, info), memo)
            kind, members = found
            placed: list[NodePlacement] = []
            for rank, (_, key, free, pool) in enumerate(sorted(members, key=lambda m: m[1])):
                gpu_ids = view.take(key, pool, kind, free, shape, org, ends)
                placed.append(self._placement(key, gpu_ids, rank, kind, shape))
            allocations = tuple(placed)
        else:
            plan = self.plans.get(memo)
            if plan is None:
                plan = self.plans[memo] = view.plan_single(
                    orgrun.single_pools, allowed, shape, quota.room_cell
                )
            fit = view.find_planned(plan, shape)
            if fit is None:
                failed = self._remember_failure(info, orgrun, allowed, memo)
                return self._fail(cls, cursor, self._memo_reason(orgrun, memo, failed, info), memo)
            gpu_ids = view.take_planned(fit, shape, org, ends)
            key, entry = fit[0], fit[2]
            kind = entry[1]
            lender = entry[2]
            if entry[6] is not None and lender is not None:  # another's dedicated node, lent to it
                quota.commit_dedicated(lender, kind[0], len(gpu_ids))
            allocations = (
                NodePlacement(
                    self.snap.nodes[key].node.id, gpu_ids, 0, kind[0], shape.cpu_cores, shape.ram_mb
                ),
            )
        gpu_type = kind[0]
        if gpu_type in quota.managed:
            quota.commit(orgrun.quota, gpu_type, total)
            orgrun.bounds.pop(gpu_type, None)
            self.quota_version += 1
        user.jobs += 1
        user.gpus += total
        if project is not None:
            project.took(total)
        weighted = total * self.weights.get(gpu_type, 1.0)
        cpu, ram = info.cpu, info.ram
        for acc in path:
            acc.gpu += weighted
            acc.cpu += cpu
            acc.ram += ram
        self.decisions.append(Place(job_id, org, allocations))
        return True

    def _fail(
        self, cls: JobClass, cursor: int, reason: PendingReason, capacity: tuple[int, int, int] | None = None
    ) -> bool:
        """The class waits. ``capacity``: the failure's memo key, which also keys its estimated start."""
        cls.shared = True
        self.waiting.append((cls.organization, reason, cls.keys, cursor, capacity))
        return False

    def _reason(self, make: Any, *args: int) -> PendingReason:
        """A cap's reason, made once per cycle for the same figures (reasons are plain values)."""
        key = (make, *args)
        reason = self.made_reasons.get(key)
        if reason is None:
            reason = self.made_reasons[key] = make(*args)
        return reason

    def _memo_reason(
        self,
        orgrun: _OrgRun,
        memo: tuple[int, int, int],
        failed: tuple[bool, frozenset[UUID]],
        info: _ShapeRun,
    ) -> PendingReason:
        reason = orgrun.reasons.get(memo)
        if reason is None:
            reason = orgrun.reasons[memo] = self._capacity_reason(orgrun.org, info, failed)
        return reason

    def _quota_verdict(
        self, orgrun: _OrgRun, info: _ShapeRun
    ) -> tuple[tuple[Kind, ...], PendingReason | None, int]:
        """The kinds quota lets the organization take ``info.total`` GPUs of (and their kinds id), or
        why none: ``QuotaLedger.check`` per GPU type, through the organization's bounds; a refusal's
        reason comes from ``check`` itself."""
        bounds = orgrun.bounds
        free = self.quota.free
        managed = self.quota.managed
        total = info.total
        mask = 0
        bit = 1
        for t in info.types:
            if t in managed:
                b = bounds.get(t)
                if b is None:
                    b = bounds[t] = _bounds(orgrun.quota, t)
                if total <= b[0] or (total <= b[1] and total <= free[t] + b[2]):
                    mask |= bit
            else:
                mask |= bit
            bit <<= 1
        got = info.allowed.get(mask)
        if got is None:
            ok = {t for i, t in enumerate(info.types) if mask >> i & 1}
            allowed = tuple(k for k in info.kinds if k[0] in ok)
            got = info.allowed[mask] = (allowed, self._kinds_id(allowed))
        if got[0] or not info.kinds:
            return got[0], None, got[1]
        oq = orgrun.quota
        blocked = [why for t in info.types if (why := self.quota.check(oq, t, total)) is not None]
        return got[0], blocked[0] if len(blocked) == 1 else reasons.quota_exhausted_any(), got[1]

    def _placement(
        self, key: int, gpu_ids: tuple[UUID, ...], rank: int, kind: Kind, shape: Shape
    ) -> NodePlacement:
        return NodePlacement(
            self.snap.nodes[key].node.id, gpu_ids, rank, kind[0], shape.cpu_cores, shape.ram_mb
        )

    def _remember_failure(
        self, info: _ShapeRun, orgrun: _OrgRun, kinds: tuple[Kind, ...], memo: tuple[int, int, int]
    ) -> tuple[bool, frozenset[UUID]]:
        """No room now. Would the job have fitted the fleet as the cycle found it, and who took the
        room since? Asked once per (pools, kinds, shape): capacity only shrinks during a cycle."""
        shape = info.shape
        if info.gang:
            fitted = self.initial.find_gang(orgrun.gang_pools, kinds, shape, ()) is not None
            pools: tuple[Pool, ...] = orgrun.gang_pools
        else:
            fitted = (
                self.initial.find_single(orgrun.single_pools, kinds, shape, self.quota.dedicated_room)
                is not None
            )
            pools = orgrun.admission_single
        takers: set[UUID] = set()
        if fitted:
            for kind in kinds:
                for pool in pools:
                    takers |= self.capacity.takers.get((pool, kind), set())
        failed = self.capacity_failed[memo] = (fitted and bool(takers), frozenset(takers))
        return failed

    def _capacity_reason(
        self, org: UUID, info: _ShapeRun, failed: tuple[bool, frozenset[UUID]]
    ) -> PendingReason:
        """Room taken this cycle went to other organizations (fair share) or to other work of this
        one; else the fleet simply has no room."""
        given_away, takers = failed
        if given_away:
            return (
                reasons.FAIR_SHARE_REASON
                if len(takers) > 1 or org not in takers
                else reasons.BEHIND_OWN_JOBS_REASON
            )
        sid = info.shape_id
        reason = self.no_capacity_reasons.get(sid)
        if reason is None:
            reason = self.no_capacity_reasons[sid] = reasons.no_capacity(info.shape)
        return reason

    # -- the result -------------------------------------------------------------------------------
    def _starts(self) -> dict[object, datetime | None]:
        """The estimated start of every class that waits for capacity, by its failure's memo key:
        one estimate per (pools signature, shape), whatever quota left of its kinds."""
        starts: dict[object, datetime | None] = {}
        if not self.policy.estimate_starts:
            return starts
        estimator = Estimator(self.snap, self.capacity)
        by_shape: dict[tuple[int, int], datetime | None] = {}
        orgrun_of = {run.sig: run for run in self.orgruns.values()}
        for memo in self.capacity_failed:
            sig, _, sid = memo
            ek = (sig, sid)
            if ek not in by_shape:
                by_shape[ek] = self._estimate(estimator, orgrun_of[sig], self.shapes[sid])
            starts[memo] = by_shape[ek]
        return starts

    def _estimate(self, estimator: Estimator, orgrun: _OrgRun, info: _ShapeRun) -> datetime | None:
        pools = orgrun.gang_pools if info.gang else orgrun.admission_single
        at = estimator.earliest(pools, info.kinds, info.shape)
        if at is None or at <= self.now_ts:  # "not before now" says nothing
            return None
        return datetime.fromtimestamp(at, tz=self.now.tzinfo or UTC)


def _bounds(oq: OrgQuota, gpu_type: str) -> tuple[float, float, float]:
    """``QuotaLedger.check`` for one organization and managed GPU type as three numbers (A, B, C): it
    admits ``k`` more GPUs exactly when ``k <= A`` (inside its nominal) or ``k <= B`` (its borrowing
    limit) and ``k <= free + C`` (the cohort's room ``free`` covers what it borrows and stops lending).
    Admission is downward closed in ``k``: borrowing ``k`` needs ``k`` of the room once it uses its
    whole nominal, else ``used + k - nominal`` plus the idle nominal it lent until now. The three
    depend on the organization's own use only, so they hold until it places that type again."""
    used = oq.used.get(gpu_type, 0)
    nominal = oq.nominal.get(gpu_type, 0)
    limit = oq.borrowing.get(gpu_type)
    within = nominal - used
    cap = math.inf if limit is None else nominal + limit - used
    if used >= nominal:
        return within, cap, 0
    idle = nominal - used - oq.reserved.get(gpu_type, 0)
    lend = 0
    if idle > 0:
        lending = oq.lending.get(gpu_type)
        lend = idle if lending is None or lending > idle else lending
    return within, cap, within - lend
