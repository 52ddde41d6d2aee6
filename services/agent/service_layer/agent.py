"""The node agent's control loop: register, heartbeat, reconcile assignments, run jobs, sample GPUs.

Four loops share one state (the registration and the local jobs) on one event loop, so no locks:
* heartbeat — every interval fleet asked for; ``known=false`` (fleet forgot the node) re-registers;
* poll — asks the scheduler what should run here and applies :func:`reconcile`'s actions;
* metrics — samples every GPU and publishes one record per node (best effort);
* reports — delivers the durable report queue to the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.runtime import supervise

from ..adapters import metrics as prom
from ..domain.model import (
    LOST_MESSAGE,
    ORPHANED_MESSAGE,
    SHUTDOWN_MESSAGE,
    Assignment,
    GpuDevice,
    JobFinished,
    JobStarted,
    LocalJob,
    Registration,
    gpu_holders,
)
from ..domain.reconcile import Finish, Start, Stop, reconcile
from .metrics import build_sample
from .ports import Fleet, GpuBackend, JobHandle, JobRunner, MetricsPublisher, Scheduler, Unreachable
from .report_queue import ReportQueue

log = logging.getLogger("gpufleet.agent")

SETTLED_MEMORY = 10_000  # finished job ids remembered so a stale assignment never restarts one


@dataclass(frozen=True)
class AgentConfig:
    hostname: str
    provider: str
    organization_id: str | None
    is_spot: bool
    agent_version: str
    poll_seconds: float = 0.5
    metrics_interval_seconds: float = 5.0
    kill_grace_seconds: float = 10.0
    register_backoff_max: float = 10.0


@dataclass
class _Running:
    job: LocalJob
    handle: JobHandle
    cancelled: bool = False
    error_message: str = ""


class NodeAgent:
    def __init__(
        self,
        config: AgentConfig,
        backend: GpuBackend,
        fleet: Fleet,
        scheduler: Scheduler,
        runner: JobRunner,
        publisher: MetricsPublisher,
        reports: ReportQueue,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config, self.backend, self.fleet, self.scheduler = config, backend, fleet, scheduler
        self.runner, self.publisher, self.reports, self.clock = runner, publisher, reports, clock
        self.registration: Registration | None = None
        self.devices: list[GpuDevice] = []
        self.driver_version = ""
        self.running: dict[str, _Running] = {}
        self.unhealthy: frozenset[int] = frozenset()
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self._adopted = self._take_back_jobs()
        self._recover_pending_reports()

    # -- life cycle -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; then stop local jobs and try to deliver their reports."""
        self.driver_version, self.devices = await asyncio.to_thread(self.backend.discover)
        self._announce_backend()
        try:
            for job, handle in self._adopted:
                self._follow(job, handle)
            self._adopted = []
            await self._register(stop)
            if stop.is_set():
                return
            loops = [
                asyncio.create_task(self._heartbeat_loop(stop), name="heartbeat"),
                asyncio.create_task(self._poll_loop(stop), name="assignments"),
                asyncio.create_task(self._metrics_loop(stop), name="metrics"),
                asyncio.create_task(self.reports.run(self.scheduler, self.node_id, stop), name="reports"),
            ]
            await supervise(stop, *loops)
        finally:
            await self._shutdown_jobs()
            await self.reports.flush(self.scheduler, self.node_id(), timeout=3.0)

    def node_id(self) -> str | None:
        return self.registration.node_id if self.registration else None

    def _announce_backend(self) -> None:
        extra = {
            "gpu_backend": self.backend.name,
            "gpus": len(self.devices),
            "driver_version": self.driver_version,
            "models": sorted({d.model for d in self.devices}),
        }
        if self.backend.real:
            log.warning(
                "GPU backend %s: %d real GPU(s) found", self.backend.name, len(self.devices), extra=extra
            )
        else:
            log.warning(
                "GPU backend %s: these %d GPUs are NOT REAL; jobs run on the CPU with fake metrics",
                self.backend.name,
                len(self.devices),
                extra=extra,
            )

    def _take_back_jobs(self) -> list[tuple[LocalJob, JobHandle]]:
        """Jobs a previous agent process left to their supervisors: followed again, not restarted.
        One whose "finished" is already queued (that agent died just before forgetting it) is released."""
        finished = {r.job_id for r in self.reports.pending if isinstance(r, JobFinished)}
        adopted = []
        for job, handle in self.runner.adopt():
            if job.job_id in finished:
                handle.release()
            else:
                adopted.append((job, handle))
        return adopted

    def _recover_pending_reports(self) -> None:
        """Reports a previous run left: a job that reported "started" but no "finished", and that no
        supervisor still runs, was lost with that agent: report it lost (after the start)."""
        finished = {r.job_id for r in self.reports.pending if isinstance(r, JobFinished)}
        finished |= {job.job_id for job, _ in self._adopted}
        for report in self.reports.pending:
            if isinstance(report, JobStarted) and report.job_id not in finished:
                self.reports.put(JobFinished(report.job_id, self.clock(), error_message=LOST_MESSAGE))
                finished.add(report.job_id)
        for job_id in finished:
            self._settle(job_id)

    # -- fleet ------------------------------------------------------------------------------------

    async def _register(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                self.registration = await self.fleet.register(
                    self.config.hostname,
                    self.config.provider,
                    self.backend.name,
                    self.driver_version,
                    self.devices,
                    self.config.organization_id,
                    self.config.is_spot,
                    self.config.agent_version,
                )
            except Unreachable as exc:
                log.warning(
                    "fleet did not answer the registration (%s); retrying",
                    exc,
                    extra={"reason": str(exc), "retry_in_s": round(delay, 2)},
                )
                await _pause(stop, delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.config.register_backoff_max)
                continue
            log.info(
                "registered with fleet",
                extra={
                    "node_id": self.registration.node_id,
                    "hostname": self.config.hostname,
                    "gpu_ids": [g.gpu_id for g in self.registration.gpus],
                },
            )
            return

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            reg = self.registration
            assert reg is not None
            await _pause(stop, reg.heartbeat_interval_seconds or 5.0)
            if stop.is_set():
                return
            unhealthy = [g.gpu_id for g in reg.gpus if g.index in self.unhealthy]
            try:
                known = await self.fleet.heartbeat(reg.node_id, unhealthy)
            except Unreachable as exc:
                log.warning("heartbeat failed (%s)", exc, extra={"reason": str(exc)})
                continue
            if not known:
                log.warning(
                    "fleet does not know this node any more; registering again",
                    extra={"node_id": reg.node_id},
                )
                await self._register(stop)

    # -- assignments and jobs ---------------------------------------------------------------------

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
            node_id = self.node_id()
            if node_id is not None:
                try:
                    assignments = await self.scheduler.get_assignments(node_id)
                except Unreachable as exc:
                    if not failing:  # one line per outage, not one per poll
                        log.warning(
                            "cannot get assignments from the scheduler (%s)", exc, extra={"reason": str(exc)}
                        )
                    failing = True
                else:
                    if failing:
                        log.info("the scheduler answers again")
                    failing = False
                    await self.apply(assignments)
            await self._wait_for_next_poll(stop)

    async def _wait_for_next_poll(self, stop: asyncio.Event) -> None:
        """The poll interval, cut short when GPUs of this node were just released (see ReportQueue)."""
        released = self.reports.gpus_released
        released.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(released.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.config.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if released.is_set() and not stop.is_set():
            await _pause(stop, RELEASE_SETTLE_SECONDS)  # let the woken scheduling round commit first

    async def apply(self, assignments: list[Assignment]) -> None:
        """Bring local jobs in line with the assignments (one reconciliation round)."""
        local = {job_id: entry.job for job_id, entry in self.running.items()}
        indices = {d.index for d in self.devices}
        for action in reconcile(assignments, local, self._settled.keys(), indices, self.clock()):
            if isinstance(action, Start):
                await self._start(action.assignment)
            elif isinstance(action, Stop):
                self._stop(action.job_id, action.cancelled)
            elif isinstance(action, Finish):
                log.info(
                    "reporting a job finished without running it",
                    extra={
                        "job_id": action.report.job_id,
                        "cancelled": action.report.cancelled,
                        "error": action.report.error_message,
                    },
                )
                self.reports.put(action.report)
                self._settle(action.report.job_id)

    async def _start(self, a: Assignment) -> None:
        try:
            handle = await self.runner.spawn(
                a.job_id, a.command, a.gpu_indices, organization_id=a.organization_id
            )
        except (OSError, ValueError) as exc:
            log.warning("job could not start", extra={"job_id": a.job_id, "reason": str(exc)})
            prom.JOB_START_FAILURES.inc()
            self.reports.put(JobFinished(a.job_id, self.clock(), error_message=f"could not start: {exc}"))
            self._settle(a.job_id)
            return
        self.reports.put(JobStarted(a.job_id, self.clock()))
        prom.JOB_STARTS.inc()
        log.info(
            "job started", extra={"job_id": a.job_id, "pid": handle.pid, "gpu_indices": list(a.gpu_indices)}
        )
        self._follow(LocalJob(a.job_id, a.gpu_indices, a.organization_id), handle)

    def _follow(self, job: LocalJob, handle: JobHandle) -> None:
        self.running[job.job_id] = _Running(job, handle)
        prom.JOBS_RUNNING.set(len(self.running))
        self._spawn_task(self._watch(job.job_id), f"job-{job.job_id}")

    async def _watch(self, job_id: str) -> None:
        entry = self.running[job_id]
        exited = await entry.handle.wait()
        self.running.pop(job_id, None)
        prom.JOBS_RUNNING.set(len(self.running))
        error = entry.error_message or exited.error
        if not error and not entry.cancelled and exited.signal_name:
            error = f"killed by {exited.signal_name}"
        prom.finished(exited.exit_code, entry.cancelled, error)
        self.reports.put(
            JobFinished(
                job_id,
                exited.finished_at or self.clock(),
                exit_code=exited.exit_code,
                output_tail=exited.output_tail,
                cancelled=entry.cancelled,
                error_message=error,
            )
        )
        self._settle(job_id)
        entry.handle.release()  # only now: a crash before the report is on disk must find the job again
        log.info(
            "job finished",
            extra={
                "job_id": job_id,
                "exit_code": exited.exit_code,
                "cancelled": entry.cancelled,
                "error": error,
            },
        )

    def _stop(self, job_id: str, cancelled: bool, error_message: str | None = None) -> None:
        entry = self.running.get(job_id)
        if entry is None or entry.job.stopping:
            return
        entry.job = replace(entry.job, stopping=True)
        entry.cancelled = cancelled
        entry.error_message = error_message or ("" if cancelled else ORPHANED_MESSAGE)
        log.info("stopping job", extra={"job_id": job_id, "cancelled": cancelled})
        self._spawn_task(entry.handle.terminate(self.config.kill_grace_seconds), f"stop-{job_id}")

    async def _shutdown_jobs(self) -> None:
        for job_id in list(self.running):
            self._stop(job_id, cancelled=False, error_message=SHUTDOWN_MESSAGE)
        if self._tasks:
            # Every watcher ends once its process is gone, which terminate() bounds by the grace period.
            await asyncio.wait(list(self._tasks), timeout=self.config.kill_grace_seconds + 5)

    def _settle(self, job_id: str) -> None:
        self._settled[job_id] = None
        self._settled.move_to_end(job_id)
        while len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)

    def _spawn_task(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task failed", exc_info=task.exception(), extra={"task": task.get_name()})

    # -- metrics ----------------------------------------------------------------------------------

    async def _metrics_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample_once()
            await _pause(stop, self.config.metrics_interval_seconds)

    async def sample_once(self) -> None:
        """Sample every GPU and publish one record. Best effort: metrics are a stream of observations,
        and a sample that cannot be published now is worthless later, so a failure is logged and the
        sample dropped (nothing is queued or retried)."""
        reg = self.registration
        if reg is None:
            return
        holders = gpu_holders(entry.job for entry in self.running.values())
        try:
            readings = await asyncio.to_thread(self.backend.sample, frozenset(holders))
        except Exception as exc:
            log.warning("could not read the GPUs; sample dropped", extra={"reason": repr(exc)})
            return
        self.unhealthy = frozenset(r.index for r in readings if r.error)
        sample = build_sample(reg, self.config.hostname, readings, holders, self.clock())
        if not sample.samples:
            return
        try:
            await self.publisher.publish(sample)
        except Exception as exc:
            log.warning(
                "could not publish GPU metrics (%r); sample dropped", exc, extra={"reason": repr(exc)}
            )


# How long after a release the agent asks again: one scheduling round (a few ms) with room to spare.
RELEASE_SETTLE_SECONDS = 0.05


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
