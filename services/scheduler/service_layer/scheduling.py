"""The scheduling loop: one active scheduler, an in-memory snapshot, a pure cycle, one transaction.

Leadership is a lease row in PostgreSQL with a fencing token (``take_lease``): replicas try to take it
every tick and the holder renews it every ``lease_renew_s``; once it has not been renewed for
``lease_ttl_s`` a standby takes it over and the token grows. Every transaction that applies a cycle
first locks the lease row and checks holder and token (``hold_lease``), so a deposed leader (paused,
partitioned, slow) commits nothing; a take-over waits for a cycle in flight and the next cycle of the
old leader finds the token changed.

On taking the lease the leader rebuilds its :class:`~..domain.engine.Snapshot` from the database (the
queued and on-node jobs, the GPU projection, decayed usage), then keeps it current from the change
numbers of jobs and of the projection: every write that matters to scheduling (a submit, cancel,
hold, finish or requeue, by any replica) takes the next number and records its transaction, and the
leader reads only what changed. A change number is taken when a row is written, not when its
transaction commits, so each read takes the snapshot's xmin first and the next read takes again the
changes of transactions from that xmin on (those that may have committed after the read; applying a
row is idempotent: the snapshot is reconciled with the row as it is now), and leaves out the rows whose
last change was the leader's own cycle (applied to the snapshot when it committed). Reads go back at
most ``change_lag_s`` in change numbers (a transaction open somewhere for long cannot make every read
re-read everything); a full rebuild every ``resync_s`` bounds what a transaction slower than that
could cost.

The cycle runs in a worker thread (``asyncio.to_thread``) so the event loop keeps serving requests;
nothing mutates the snapshot meanwhile (only this loop does, and it awaits the cycle). Its placements
and the changed "why pending" answers are written in one fenced transaction with batched statements;
a placement whose job was cancelled or held since the snapshot, or whose GPUs fleet stopped offering,
is dropped (the change is read next time). The primary key of gpu_allocations still refuses a GPU
booked twice, whatever happens: that transaction rolls back and the leader rebuilds.

Time-limit warnings (``gpufleet.job.time_limit_warning``) come from the same state: every job with a
limit that the leader reconciles (at a rebuild, or as its changes are read) tells
:class:`~..domain.time_limit_warnings.DueWarnings` when its running attempt is due to be warned, or that
it is not (ended, requeued, warned already); jobs without a limit cost one test. Each step sends those
due by then in a fenced transaction of their own that writes the warned attempt on the job with the
event, so a deposed leader sends nothing and a new tenure, which rebuilds, sends nothing twice (and
sends late, once, what came due while no one led). Between steps the loop sleeps no longer than until
the next one is due.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from ..domain.engine import Allocation, CycleResult, Place, Policy, QueuedJob, Snapshot, Usage, cycle
from ..domain.inventory import InventoryGpu
from ..domain.model import ON_NODE, GpuAllocation, Job, JobPlacement, JobStatus, Pending
from ..domain.policy_admin import usage_rules_changed
from ..domain.time_limit_warnings import DueWarnings
from ..domain.views import NO_USER, allocation_of, nodes_of, queued_job
from .handlers import Dependencies
from .policy import PolicyStore
from .unit_of_work import SchedulerUnitOfWork

log = logging.getLogger("gpufleet.scheduler.loop")

PendingView = tuple[str, str, datetime | None]  # code, message, estimated start
_ESTIMATE_SLACK = timedelta(seconds=30)  # an estimate that moved less than this is not rewritten
# Two ways of saying "waiting for room": a job behind others of its organization flips between them from
# cycle to cycle (the cycle that places the jobs ahead of it says the room went to them, the next that
# no room is free), and rewriting every queued job's reason on each flip made a job event per queued job
# per placement (2,060 pending events for 400 one-GPU jobs on 8 GPUs). Either is true of such a job; the
# one written first stays until the job waits for something else.
_ROOM_WAITS = frozenset({"no_capacity", "behind_own_jobs"})
_MAX_OWN = 1000  # the leader's own cycle transactions a read of changes leaves out, at most


class Deposed(Exception):
    """The lease is no longer ours: this replica's cycle must not commit."""


@dataclass
class LeaderState:
    snapshot: Snapshot
    gpus: dict[UUID, InventoryGpu]
    queued: dict[UUID, QueuedJob]
    on_node: dict[UUID, Allocation]
    pending: dict[UUID, PendingView]
    inventory_seq: int
    built_at: float
    # Where the next read of job changes starts (``job_changes``): transactions from here on may have
    # committed after the last read.
    unsettled: int = 0
    # This leader's committed cycle transactions whose rows may still come back in a read: the cycle
    # applied them to the snapshot already, so the read leaves them out.
    own: list[int] = field(default_factory=list)
    # Running attempts with a time limit, by when they are to be warned.
    warnings: DueWarnings = field(default_factory=DueWarnings)
    # The database's clock at the last read and this process's monotonic clock then: how long the
    # loop may sleep before the next warning is due.
    clock: tuple[datetime, float] | None = None


@dataclass(frozen=True)
class CycleReport:
    placed: list[Job]
    seconds: float
    pending_written: int = 0
    preempted: list[Job] = field(default_factory=list)  # asked to stop: lent capacity reclaimed
    warned: list[Job] = field(default_factory=list)  # told their time limit nears


@dataclass
class Scheduler:
    """One replica's scheduling loop (leader or hot standby)."""

    deps: Dependencies
    holder: str
    token: int | None = None
    state: LeaderState | None = None
    renewed_at: float = -float("inf")
    marks: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic, jobs watermark)
    # The stored policy (service_layer/policy.py), refreshed at each step; None: options.policy.
    policies: PolicyStore | None = None
    policy_version: int = -1
    _policy: Policy | None = None

    @property
    def policy(self) -> Policy:
        return self._policy or self.deps.options.policy

    async def _refresh_policy(self) -> None:
        """Take a policy change in before a step; a new half-life or GPU-type weight re-weighs usage."""
        if self.policies is None:
            return
        new = await self.policies.refresh()
        if self.policies.version != self.policy_version:
            if usage_rules_changed(self.policy, new):
                self.state = None
            self._policy, self.policy_version = new, self.policies.version

    @property
    def leading(self) -> bool:
        return self.token is not None

    # -- the lease ------------------------------------------------------------------------------
    async def _keep_lease(self, uow: SchedulerUnitOfWork) -> bool:
        options = self.deps.options
        token = await uow.take_lease(self.holder, options.lease_ttl_s)
        self.marks.append((time.monotonic(), await uow.job_watermark()))
        if token is None:
            if self.token is not None:
                log.warning("lost the scheduler lease", extra={"holder": self.holder})
            self.token, self.state = None, None
            return False
        if token != self.token:
            log.info("took the scheduler lease", extra={"holder": self.holder, "token": token})
            self.state = None  # a new tenure: rebuild from the database
        self.token, self.renewed_at = token, time.monotonic()
        return True

    async def give_up(self) -> None:
        """Hand the lease over at once (a clean stop), instead of letting it expire."""
        if self.token is None:
            return
        async with self.deps.uow(system=True) as uow:
            await uow.give_up_lease(self.holder, self.token)
        self.token, self.state = None, None

    def _low_mark(self) -> int:
        """The jobs watermark of ``change_lag_s`` ago (or the oldest known): changes are read from
        there, so one committed late below the newest mark is still seen."""
        horizon = time.monotonic() - self.deps.options.change_lag_s
        while len(self.marks) > 1 and self.marks[1][0] <= horizon:
            self.marks.popleft()
        return self.marks[0][1] if self.marks else 0

    # -- one step -------------------------------------------------------------------------------
    async def step(self) -> CycleReport | None:
        """Keep or take the lease, bring the snapshot up to date, run one cycle and apply it.
        None when another replica leads."""
        options = self.deps.options
        if self.token is None or time.monotonic() - self.renewed_at >= options.lease_renew_s:
            async with self.deps.uow(system=True) as uow:
                if not await self._keep_lease(uow):
                    return None
        await self._refresh_policy()
        state = self.state
        resync = state is not None and time.monotonic() - state.built_at >= options.resync_s
        async with self.deps.uow(system=True) as uow:
            if state is None or resync:
                state = self.state = await self._rebuild(uow)
            else:
                await self._sync(uow, state)
            now = await uow.now()
        state.clock = (now, time.monotonic())
        warned = await self._warn(state, now)
        began = time.perf_counter()
        result = await asyncio.to_thread(cycle, state.snapshot, self.policy, now)
        placed, written, preempted = await self._apply(state, result)
        return CycleReport(placed, time.perf_counter() - began, written, preempted, warned)

    def next_warning_in(self) -> float | None:
        """Seconds until the next time-limit warning is due (0: now), or None: none is known (or
        this replica does not lead)."""
        state = self.state
        if state is None or state.clock is None:
            return None
        due = state.warnings.next_due()
        if due is None:
            return None
        seen, at = state.clock
        return max((due - seen).total_seconds() - (time.monotonic() - at), 0.0)

    # -- state ----------------------------------------------------------------------------------
    async def _rebuild(self, uow: SchedulerUnitOfWork) -> LeaderState:
        began = time.perf_counter()
        policy = self.policy
        gpus, inventory_seq = await uow.inventory()
        jobs, unsettled = await uow.scheduling_jobs()
        now = await uow.now()
        usage = await uow.usage(policy.half_life_s, policy.half_life_s * 10)
        state = LeaderState(
            Snapshot(), {g.gpu_id: g for g in gpus}, {}, {}, {}, inventory_seq, time.monotonic()
        )
        for node in nodes_of(gpus):
            state.snapshot.update_node(node)
        for row in usage:
            amount = Usage(row.gpu_s * policy.weight(row.gpu_type or ""), row.cpu_s, row.ram_mb_s)
            state.snapshot.record_usage(
                row.organization_id, row.project_id, row.user_id or NO_USER, amount, now, policy.half_life_s
            )
        for job in jobs:
            self._reconcile(state, job)
        state.unsettled = unsettled
        # The snapshot lives as long as the tenure: keep the collector from walking it every cycle.
        gc.freeze()
        log.info(
            "scheduler state rebuilt",
            extra={
                "queued": len(state.queued),
                "on_node": len(state.on_node),
                "time_limit_warnings": len(state.warnings),
                "gpus": len(gpus),
                "seconds": round(time.perf_counter() - began, 3),
            },
        )
        return state

    async def _sync(self, uow: SchedulerUnitOfWork, state: LeaderState) -> None:
        jobs, unsettled = await uow.job_changes(state.unsettled, self._low_mark(), state.own)
        for job in jobs:
            self._reconcile(state, job)
        state.unsettled = unsettled
        # One of ours below the new xmin had ended before this read: no later read can meet it. While a
        # transaction open elsewhere holds the xmin back, only the newest are kept (one left out here
        # costs a re-read of rows the snapshot already agrees with, nothing else).
        state.own = [x for x in state.own if x >= unsettled][-_MAX_OWN:]
        gpus, inventory_seq = await uow.inventory_changes(state.inventory_seq)
        if gpus:
            for gpu in gpus:
                state.gpus[gpu.gpu_id] = gpu
            for node in nodes_of(gpus):
                state.snapshot.update_node(node)
            state.inventory_seq = inventory_seq

    def _reconcile(self, state: LeaderState, job: Job) -> None:
        """Make the snapshot agree with ``job`` as it is in the database now (idempotent)."""
        if job.time_limit_seconds:  # a job without a limit is never warned: nothing to keep
            state.warnings.set(job.id, job.time_limit_warning_due)
        snap, policy = state.snapshot, self.policy
        want = queued_job(job) if job.status is JobStatus.QUEUED else None
        have = state.queued.get(job.id)
        if have is not None and have != want:
            snap.remove_job(job.id)
            del state.queued[job.id]
        if want is not None and have != want:
            snap.add_job(want)
            state.queued[job.id] = want
        if want is None:
            state.pending.pop(job.id, None)
        elif job.pending is not None:
            state.pending[job.id] = (job.pending.code, job.pending.message, job.estimated_start)
        else:
            state.pending.pop(job.id, None)
        holding = state.on_node.get(job.id)
        if job.status in ON_NODE and holding is not None and job.preempted_at and not holding.preempted:
            snap.mark_preempted(job.id)  # asked to stop by an earlier tenure of this leader
            state.on_node[job.id] = snap.allocations[job.id]
        if job.status in ON_NODE and holding is None:
            allocation = allocation_of(job)
            try:
                snap.allocate(allocation)
            except ValueError:
                log.exception("inconsistent allocation in the database", extra={"job_id": str(job.id)})
                return
            state.on_node[job.id] = allocation
        elif job.status not in ON_NODE and holding is not None:
            snap.release(job.id)
            del state.on_node[job.id]
            ended = job.finished_at or job.updated_at
            if ended is not None:
                held_s = max(0.0, (ended - holding.started_at).total_seconds())
                gpu_s = sum(policy.weight(t) for share in holding.shares for t in share.gpu_types)
                cpu = sum(share.cpu_cores for share in holding.shares)
                ram = sum(share.ram_mb for share in holding.shares)
                snap.record_usage(
                    holding.organization,
                    holding.project,
                    holding.user,
                    Usage(gpu_s * held_s, cpu * held_s, ram * held_s),
                    ended,
                    policy.half_life_s,
                )

    # -- time-limit warnings ----------------------------------------------------------------------
    async def _warn(self, state: LeaderState, now: datetime) -> list[Job]:
        """Send the warnings due by ``now``, fenced like a cycle's writes. They leave the heap first:
        a job that ended, was requeued or was warned since is left alone (``Job.warn_time_limit``
        says no), and if this transaction fails the state is dropped and rebuilt with them."""
        job_ids = state.warnings.pop_due(now)
        if not job_ids:
            return []
        assert self.token is not None
        async with self.deps.uow(system=True) as uow:
            if not await uow.hold_lease(self.holder, self.token, self.deps.options.lease_ttl_s):
                raise Deposed
            at = await uow.now()
            warned = [job for job in await uow.running_jobs_by_id(job_ids) if job.warn_time_limit(at)]
            await uow.save_jobs(warned)
        if warned:
            log.info("warned jobs near their time limit", extra={"jobs": [str(j.id) for j in warned]})
        return warned

    # -- applying a cycle -------------------------------------------------------------------------
    def _pending_changes(self, state: LeaderState, result: CycleResult) -> dict[UUID, PendingView]:
        limit = self.deps.options.max_pending_writes
        changes: dict[UUID, PendingView] = {}
        for outcome in result.outcomes:
            code, message = outcome.reason.code, outcome.reason.message
            for j, key in enumerate(outcome.keys):
                job_id = key[2]
                estimate = outcome.estimated_start if j == 0 else None
                have = state.pending.get(job_id)
                if have is not None and _same_wait(have, code, message) and _close(have[2], estimate):
                    continue
                changes[job_id] = (code, message, estimate)
                if len(changes) >= limit:
                    return changes
        return changes

    async def _apply(self, state: LeaderState, result: CycleResult) -> tuple[list[Job], int, list[Job]]:
        places = result.placements
        preempts = result.preemptions
        pending = self._pending_changes(state, result)
        # the waiting jobs that reclaim keep their nominal from being lent again (engine ``quota``)
        state.snapshot.reclaims = dict(result.reclaims)
        if not places and not pending and not preempts:
            return [], 0, []
        assert self.token is not None
        options = self.deps.options
        placed: list[tuple[Place, Job]] = []
        written: list[Job] = []
        stopping: list[Job] = []
        async with self.deps.uow(system=True) as uow:
            if not await uow.hold_lease(self.holder, self.token, options.lease_ttl_s):
                raise Deposed
            xid = await uow.transaction_id()  # hold_lease wrote: the transaction has its id
            now = await uow.now()
            # Preemptions first, in the same fenced transaction: a victim that finished, was
            # cancelled or requeued since the snapshot is left alone (Job.preempt says no).
            for preempt in preempts:
                victim = await uow.get_job(preempt.job_id, for_update=True)
                if victim is not None and victim.preempt(now):
                    stopping.append(victim)
            jobs = {j.id: j for j in await uow.placeable_jobs([p.job_id for p in places])}
            wanted = [g for p in places if p.job_id in jobs for a in p.allocations for g in a.gpu_ids]
            offered = await uow.schedulable_gpus(wanted)
            for place in places:
                job = jobs.get(place.job_id)
                gpu_ids = [g for a in place.allocations for g in a.gpu_ids]
                if job is None or any(g not in offered or g not in state.gpus for g in gpu_ids):
                    continue
                allocation = tuple(
                    GpuAllocation(
                        g, state.gpus[g].device_index, state.gpus[g].gpu_type, state.gpus[g].cost_per_hour
                    )
                    for g in gpu_ids
                )
                placements = tuple(
                    JobPlacement(a.node_id, a.rank, a.gpu_ids, state.gpus[a.gpu_ids[0]].rendezvous_address)
                    for a in place.allocations
                )
                job.schedule(placements[0].node_id, allocation, now, placements)
                placed.append((place, job))
            placed_ids = {job.id for _, job in placed}
            for job in await uow.queued_jobs_by_id([j for j in pending if j not in placed_ids]):
                code, message, estimate = pending[job.id]
                job.set_pending(Pending(code, message), estimate, now)
                written.append(job)
            await uow.save_jobs([job for _, job in placed] + written + stopping)
            await uow.hold_gpus([job for _, job in placed])
        state.own.append(xid)  # committed: its rows are the snapshot's already (applied below)
        for job in stopping:
            state.snapshot.mark_preempted(job.id)
            held = state.snapshot.allocations.get(job.id)
            if held is not None:
                state.on_node[job.id] = held
        if stopping:
            log.info(
                "preempted jobs to reclaim lent capacity",
                extra={
                    "jobs": [str(j.id) for j in stopping],
                    "for_jobs": sorted(
                        {str(p.for_job) for p in preempts if p.job_id in {j.id for j in stopping}}
                    ),
                },
            )
            self.deps.assignments.changed({n for job in stopping for n in job.node_ids})
        for place, job in placed:
            state.snapshot.apply(place, now)
            state.on_node[job.id] = allocation_of(job)
            state.queued.pop(job.id, None)
            state.pending.pop(job.id, None)
        for job in written:
            state.pending[job.id] = pending[job.id]
        if placed:
            self.deps.assignments.changed({n for _, job in placed for n in job.node_ids})
        return [job for _, job in placed], len(written), stopping


def _same_wait(have: PendingView, code: str, message: str) -> bool:
    if have[0] == code:
        return have[1] == message
    return have[0] in _ROOM_WAITS and code in _ROOM_WAITS


def _close(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < _ESTIMATE_SLACK


CycleObserver = Callable[[CycleReport], None]


async def run_scheduling_loop(
    stop: asyncio.Event,
    scheduler: Scheduler,
    tick_seconds: float,
    observe: CycleObserver | None = None,
    on_failure: Callable[[], None] | None = None,
) -> None:
    """Run steps until ``stop``; a failed step (database down, a booking refused) is logged, the state
    is dropped (rebuilt next step) and the step retried next tick. On stop the lease is handed over."""
    deps = scheduler.deps
    wait_s = min(tick_seconds, deps.options.lease_renew_s)
    try:
        while not stop.is_set():
            deps.wakeup.clear()  # cleared before the step: a wake-up during it causes another step
            try:
                report = await scheduler.step()
                if report is not None:
                    if observe is not None:
                        observe(report)
                    if report.placed:
                        log.info("scheduled jobs", extra={"jobs": [str(j.id) for j in report.placed]})
            except asyncio.CancelledError:
                raise
            except Deposed:
                log.warning("deposed: another scheduler holds the lease; nothing of this cycle applied")
                scheduler.token, scheduler.state = None, None
            except Exception:
                scheduler.state = None
                if on_failure is not None:
                    on_failure()
                log.exception("scheduling step failed; retrying")
            # Wakes on a submit or a release, on stop, when a time-limit warning is due, or after one tick.
            due_in = scheduler.next_warning_in()
            waking = asyncio.create_task(deps.wakeup.wait(wait_s if due_in is None else min(wait_s, due_in)))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({waking, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waking, stopping):
                t.cancel()
    finally:
        try:
            await scheduler.give_up()
        except Exception:
            log.warning("could not hand the lease over; it expires by itself", exc_info=True)
