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

Preemption will be a phase before step 2 that frees GPUs in the same ``CapacityView`` (see
``decisions``); because it runs before any placement, the "capacity only shrinks" memo stays valid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from heapq import heapify, heappop, heappush
from uuid import UUID

from . import reasons
from .admission import never_fits
from .capacity import CapacityView, PoolChoice
from .decisions import (
    ClassOutcome,
    CycleResult,
    CycleStats,
    Decision,
    NodePlacement,
    PendingReason,
    Place,
    Reject,
)
from .estimate import Estimator
from .fairshare import Account, mean_life
from .model import AccountPath, Kind, Pool, Shape, account_chain
from .policy import Policy, UserCap
from .quota import OrgQuota, QuotaLedger
from .snapshot import JobClass, Snapshot

_CAPACITY_CODES = frozenset(
    {reasons.NO_CAPACITY, reasons.GANG_NO_CAPACITY, reasons.FAIR_SHARE, reasons.BEHIND_OWN_JOBS}
)


def cycle(snapshot: Snapshot, policy: Policy, now: datetime) -> CycleResult:
    return _Cycle(snapshot, policy, now).run()


class _OrgRun:
    """One organization during one cycle: where it may place and its quota standing."""

    __slots__ = (
        "admission_gang",
        "admission_single",
        "gang_pools",
        "org",
        "quota",
        "sig",
        "single_pools",
        "verdicts",
    )

    def __init__(
        self, org: UUID, single: tuple[PoolChoice, ...], gang: tuple[Pool, ...], sig: int, quota: OrgQuota
    ):
        self.org = org
        self.single_pools = single
        self.gang_pools = gang
        self.admission_single = tuple(p for p, _ in single)
        self.admission_gang = gang
        self.sig = sig  # organizations with the same pools share memos
        self.quota = quota
        self.verdicts: dict[
            tuple[tuple[Kind, ...], int], tuple[int, tuple[Kind, ...], PendingReason | None]
        ] = {}


class _UserRun:
    __slots__ = ("cap", "gpus", "jobs")

    def __init__(self, cap: UserCap | None, jobs: int, gpus: int) -> None:
        self.cap = cap
        self.jobs = jobs
        self.gpus = gpus


class _ClassRun:
    """One class during one cycle: how far into its queue the cycle got."""

    __slots__ = ("cls", "cursor", "kinds", "orgrun", "user")

    def __init__(self, cls: JobClass, kinds: tuple[Kind, ...], orgrun: _OrgRun, user: _UserRun) -> None:
        self.cls = cls
        self.cursor = 0
        self.kinds = kinds
        self.orgrun = orgrun
        self.user = user


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
        self.waiting: list[tuple[_ClassRun, PendingReason]] = []
        self.never_fitting: list[tuple[_ClassRun, PendingReason]] = []
        # capacity failures per (pools signature, allowed kinds, shape id): did it fit before the cycle
        # began, and who took the room since
        self.capacity_failed: dict[tuple[object, ...], tuple[bool, frozenset[UUID]]] = {}
        self.no_capacity_reasons: dict[int, PendingReason] = {}
        self.admission: dict[tuple[int, int], str | None] = {}
        self.kinds_memo: dict[tuple[str | None, int], tuple[Kind, ...]] = {}
        self.orgruns: dict[UUID, _OrgRun] = {}
        self.signatures: dict[tuple[Pool, ...], int] = {}
        self.all_kinds = sorted({kind for _, kind in snapshot.kind_nodes}, key=lambda k: (k[1], k[0]))
        owners = sorted({o for o, _ in self.quota.dedicated}, key=lambda o: o.int)
        self.owners = set(owners)
        self.lenders = [o for o in owners if self.quota.lends_dedicated(o)]
        self.rejected = 0
        self._quota_epoch = 0

    # -- set-up -----------------------------------------------------------------------------------
    def _kinds(self, shape: Shape) -> tuple[Kind, ...]:
        mk = (shape.gpu_type, shape.gpu_memory_mb)
        kinds = self.kinds_memo.get(mk)
        if kinds is None:
            kinds = tuple(
                k
                for k in self.all_kinds
                if (shape.gpu_type is None or k[0] == shape.gpu_type) and k[1] >= shape.gpu_memory_mb
            )
            self.kinds_memo[mk] = kinds
        return kinds

    def _orgrun(self, org: UUID) -> _OrgRun:
        run = self.orgruns.get(org)
        if run is None:
            own: tuple[Pool, ...] = (None, org) if org in self.owners else (None,)
            single = tuple((p, False) for p in own) + tuple((o, True) for o in self.lenders if o != org)
            sig = self.signatures.setdefault(tuple(p for p, _ in single), len(self.signatures))
            run = self.orgruns[org] = _OrgRun(org, single, own, sig, self.quota.of(org))
        return run

    def _account(self, accounts: dict[AccountPath, Account], path: AccountPath) -> Account:
        acc = accounts.get(path)
        if acc is None:
            snap, hl = self.snap, self.policy.half_life_s
            tau = mean_life(hl)
            usage = snap.usage_at(path, self.now, hl)
            per_type = snap.account_gpus.get(path, {})
            gpus = sum(n * self.weights.get(t, 1.0) for t, n in sorted(per_type.items()))
            acc = accounts[path] = Account(
                path,
                self.policy.shares(path),
                usage.gpu_s / tau + gpus,
                usage.cpu_s / tau + snap.account_cpu.get(path, 0),
                usage.ram_mb_s / tau + snap.account_ram.get(path, 0),
            )
        return acc

    def _build(self) -> Account:
        """The fair-share tree over the accounts with waiting work, one leaf at a time."""
        root = Account(("root",), 1.0, 0.0, 0.0, 0.0)
        accounts: dict[AccountPath, Account] = {("root",): root}
        kids: dict[AccountPath, set[AccountPath]] = {}
        users: dict[tuple[UUID, UUID], _UserRun] = {}
        snap, policy, admission = self.snap, self.policy, self.admission
        kinds_by_shape: dict[int, tuple[Kind, ...]] = {}
        for leaf_path, classes in snap.leaves.items():
            org, project, user = leaf_path[1], leaf_path[2], leaf_path[3]
            orgrun = self._orgrun(org)
            uk = (org, user)
            userrun = users.get(uk)
            if userrun is None:
                jobs, gpus = snap.user_running.get(uk, (0, 0))
                userrun = users[uk] = _UserRun(policy.user_cap(org, user), jobs, gpus)
            entries = []
            for cls in classes.values():
                shape = cls.shape
                kinds = kinds_by_shape.get(cls.shape_id)
                if kinds is None:
                    kinds = kinds_by_shape[cls.shape_id] = self._kinds(shape)
                run = _ClassRun(cls, kinds, orgrun, userrun)
                ak = (cls.shape_id, orgrun.sig)
                if ak not in admission:
                    pools = orgrun.admission_gang if shape.nodes > 1 else orgrun.admission_single
                    admission[ak] = never_fits(snap, shape, pools)
                why = admission[ak]
                if why is None:
                    entries.append((cls.keys[0], run))
                else:
                    self._never_fits(run, why)
            if not entries:
                continue
            chain = account_chain(org, project, user)
            parent: AccountPath = ("root",)
            for path in chain:
                kids.setdefault(parent, set()).add(path)
                self._account(accounts, path)
                parent = path
            leaf = accounts[leaf_path]
            leaf.classes = entries
            heapify(entries)
        for path, children in kids.items():
            acc = accounts[path]
            acc.children = [(accounts[c].share(self.cap), accounts[c].order, accounts[c]) for c in children]
            heapify(acc.children)
        return root

    def _never_fits(self, run: _ClassRun, why: str) -> None:
        reason = reasons.never_fits(why)
        if self.policy.reject_never_fitting:
            for key in run.cls.keys:
                self.decisions.append(Reject(key[2], run.cls.organization, reason))
                self.rejected += 1
        else:
            self.never_fitting.append((run, reason))

    # -- the walk ---------------------------------------------------------------------------------
    def run(self) -> CycleResult:
        root = self._build()
        self.decisions.sort(key=lambda d: d.job_id.int)  # rejections, in a stable order
        cap = self.cap
        orgs = root.children
        placements = 0
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
                    _, run = heappop(acc.classes)
                    if self._try(run, path):
                        placed = True
                        placements += 1
                        run.cursor += 1
                        keys = run.cls.keys
                        if run.cursor < len(keys):
                            heappush(acc.classes, (keys[run.cursor], run))
                elif acc.children:
                    path.append(heappop(acc.children)[2])
                else:
                    path.pop()  # spent: not pushed back
            for i in range(len(path) - 1, 0, -1):
                child = path[i]
                if child.children or child.classes:
                    heappush(path[i - 1].children, (child.share(cap), child.order, child))
            if path and (path[0].children or path[0].classes):
                heappush(orgs, (path[0].share(cap), path[0].order, path[0]))
        outcomes = self._outcomes()
        held = tuple(
            sorted(((j.organization, j.id) for j in self.snap.held.values()), key=lambda t: t[1].int)
        )
        stats = CycleStats(len(self.snap.classes), placements, self.rejected, self.capacity.searches)
        return CycleResult(tuple(self.decisions), outcomes, held, stats)

    def _fail(self, run: _ClassRun, reason: PendingReason) -> bool:
        self.waiting.append((run, reason))
        return False

    def _try(self, run: _ClassRun, path: list[Account]) -> bool:
        cls = run.cls
        shape = cls.shape
        total = shape.total_gpus
        user = run.user
        cap = user.cap
        if cap is not None:
            if cap.max_running_jobs is not None and user.jobs + 1 > cap.max_running_jobs:
                return self._fail(run, reasons.user_cap_jobs(cap.max_running_jobs))
            if cap.max_gpus is not None and user.gpus + total > cap.max_gpus:
                return self._fail(run, reasons.user_cap_gpus(cap.max_gpus, user.gpus, total))
        orgrun = run.orgrun
        quota = self.quota
        allowed = run.kinds
        if quota.managed:
            # Within a cycle quota only tightens (an org's use and the cohort's free room only move
            # one way), so a refusal stays valid; an admission only until the next managed commit.
            vk = (allowed, total)
            verdict = orgrun.verdicts.get(vk)
            if verdict is None or (verdict[2] is None and verdict[0] != self._quota_epoch):
                allowed, blocked = self._quota_verdict(orgrun, allowed, total)
                orgrun.verdicts[vk] = (self._quota_epoch, allowed, blocked)
            else:
                _, allowed, blocked = verdict
            if blocked is not None:
                return self._fail(run, blocked)
        gang = shape.nodes > 1
        memo = (orgrun.sig, allowed, cls.shape_id)
        failed = self.capacity_failed.get(memo)
        if failed is not None:
            return self._fail(run, self._capacity_reason(run, failed))
        job_id = cls.keys[run.cursor][2]
        limit = self.snap.jobs[job_id].time_limit_s
        ends = float("inf") if limit is None else self.now_ts + limit
        view = self.capacity
        org = cls.organization
        placed: list[NodePlacement] = []
        if gang:
            found = view.find_gang(orgrun.gang_pools, allowed, shape, self.policy.fabric_labels)
            if found is None:
                return self._fail(run, self._capacity_reason(run, self._remember_failure(run, allowed, memo)))
            kind, members = found
            for rank, (_, key, free, pool) in enumerate(sorted(members, key=lambda m: m[1])):
                gpu_ids = view.take(key, pool, kind, free, shape, org, ends)
                placed.append(self._placement(key, gpu_ids, rank, kind, shape))
        else:
            fit = view.find_single(orgrun.single_pools, allowed, shape, quota.dedicated_room)
            if fit is None:
                return self._fail(run, self._capacity_reason(run, self._remember_failure(run, allowed, memo)))
            _, _, key, free, pool, kind = fit
            gpu_ids = view.take(key, pool, kind, free, shape, org, ends)
            if pool is not None and pool != org:
                quota.commit_dedicated(pool, kind[0], len(gpu_ids))
            placed.append(self._placement(key, gpu_ids, 0, kind, shape))
        quota.commit(orgrun.quota, kind[0], total)
        if kind[0] in quota.managed:
            self._quota_epoch += 1
        user.jobs += 1
        user.gpus += total
        weighted = total * self.weights.get(kind[0], 1.0)
        cpu = shape.cpu_cores * shape.nodes
        ram = shape.ram_mb * shape.nodes
        for acc in path:
            acc.gpu += weighted
            acc.cpu += cpu
            acc.ram += ram
        self.decisions.append(Place(job_id, org, tuple(placed)))
        return True

    def _quota_verdict(
        self, orgrun: _OrgRun, kinds: tuple[Kind, ...], total: int
    ) -> tuple[tuple[Kind, ...], PendingReason | None]:
        """The kinds quota lets the organization take ``total`` GPUs of, or why none."""
        verdicts: dict[str, PendingReason | None] = {}
        for kind in kinds:
            if kind[0] not in verdicts:
                verdicts[kind[0]] = self.quota.check(orgrun.quota, kind[0], total)
        allowed = tuple(k for k in kinds if verdicts[k[0]] is None)
        if allowed or not kinds:
            return allowed, None
        blocked = [v for v in verdicts.values() if v is not None]
        return (), blocked[0] if len(blocked) == 1 else reasons.quota_exhausted_any()

    def _placement(
        self, key: int, gpu_ids: tuple[UUID, ...], rank: int, kind: Kind, shape: Shape
    ) -> NodePlacement:
        return NodePlacement(
            self.snap.nodes[key].node.id, gpu_ids, rank, kind[0], shape.cpu_cores, shape.ram_mb
        )

    def _remember_failure(
        self, run: _ClassRun, kinds: tuple[Kind, ...], memo: tuple[object, ...]
    ) -> tuple[bool, frozenset[UUID]]:
        """No room now. Would the job have fitted the fleet as the cycle found it, and who took the
        room since? Asked once per (pools, kinds, shape): capacity only shrinks during a cycle."""
        shape = run.cls.shape
        orgrun = run.orgrun
        if shape.nodes > 1:
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

    def _capacity_reason(self, run: _ClassRun, failed: tuple[bool, frozenset[UUID]]) -> PendingReason:
        """Room taken this cycle went to other organizations (fair share) or to other work of this
        one; else the fleet simply has no room."""
        given_away, takers = failed
        if given_away:
            org = run.cls.organization
            return (
                reasons.FAIR_SHARE_REASON
                if len(takers) > 1 or org not in takers
                else reasons.BEHIND_OWN_JOBS_REASON
            )
        sid = run.cls.shape_id
        reason = self.no_capacity_reasons.get(sid)
        if reason is None:
            reason = self.no_capacity_reasons[sid] = reasons.no_capacity(run.cls.shape)
        return reason

    # -- the result -------------------------------------------------------------------------------
    def _outcomes(self) -> tuple[ClassOutcome, ...]:
        estimator = Estimator(self.snap, self.capacity)
        estimates: dict[tuple[int, bool, int], float | None] = {}
        starts: dict[float, datetime] = {}
        out: list[ClassOutcome] = []
        never = sorted(self.never_fitting, key=lambda w: w[0].cls.keys[0])
        for run, reason in [*never, *self.waiting]:  # the walk's order is already deterministic
            cls = run.cls
            start = None
            if self.policy.estimate_starts and reason.code in _CAPACITY_CODES:
                shape = cls.shape
                orgrun = run.orgrun
                pools = orgrun.gang_pools if shape.nodes > 1 else orgrun.admission_single
                ek = (orgrun.sig, shape.nodes > 1, cls.shape_id)
                if ek in estimates:
                    at = estimates[ek]
                else:
                    at = estimates[ek] = estimator.earliest(pools, run.kinds, shape)
                if at is not None and at > self.now_ts:  # "not before now" says nothing
                    start = starts.get(at)
                    if start is None:
                        start = starts[at] = datetime.fromtimestamp(at, tz=self.now.tzinfo or UTC)
            out.append(ClassOutcome(cls.organization, reason, tuple(cls.keys[run.cursor :]), start))
        return tuple(out)
