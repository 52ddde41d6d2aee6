"""The node agent's control loop: register, heartbeat, reconcile assignments, run jobs, sample GPUs.

Four loops share one state (the registration and the local jobs) on one event loop, so no locks:
* heartbeat — every interval fleet asked for; ``known=false`` (fleet forgot the node) re-registers;
* assignments — watches the scheduler's stream of what should run here and applies
  :func:`reconcile`'s actions to each update as it comes (level-triggered: every update is the whole
  desired state, so a missed or repeated one is harmless); reconnects with backoff;
* metrics — samples every GPU and publishes one record per node (best effort);
* reports — delivers the durable report queue to the scheduler, in batches.

Nothing here waits for the scheduler to "settle": a finished job is remembered (``_settled``) until no
assignment can name it any more, so an update that still lists it never starts it twice.

A job with a time limit is watched by a task of its own: a warning (log, metric, a line in the job's
output) at :func:`~shared.time_limit.warning_after` (the moment the scheduler announces on the job topic),
then the same stop as a cancel (SIGTERM to every process of the job, SIGKILL after the grace) at the
limit, reported ``timed_out``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from shared.runtime import supervise
from shared.time_limit import warning_after, warning_message

from ..adapters import metrics as prom
from ..domain.model import (
    LOST_MESSAGE,
    ORPHANED_MESSAGE,
    SHUTDOWN_MESSAGE,
    Assignment,
    AssignmentsUpdate,
    GpuDevice,
    JobFinished,
    JobStarted,
    LocalJob,
    Registration,
    gpu_holders,
    timed_out_message,
)
from ..domain.reconcile import Finish, Start, Stop, reconcile
from .metrics import build_sample
from .output_shipper import OutputShipper
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
    metrics_interval_seconds: float = 5.0
    kill_grace_seconds: float = 10.0
    register_backoff_max: float = 10.0
    # What registration reports of this node besides its GPUs (0 / empty: not reported).
    cpu_cores: int = 0
    ram_mb: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    # A stream silent this long is taken for dead (the scheduler sends a keep-alive every 10 s).
    watch_idle_seconds: float = 35.0
    watch_backoff_max: float = 5.0


@dataclass
class _Running:
    job: LocalJob
    handle: JobHandle
    cancelled: bool = False
    timed_out: bool = False
    error_message: str = ""
    limit_task: asyncio.Task | None = None


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        output: OutputShipper | None = None,
    ) -> None:
        self.config, self.backend, self.fleet, self.scheduler = config, backend, fleet, scheduler
        self.runner, self.publisher, self.reports, self.clock = runner, publisher, reports, clock
        self.sleep = sleep  # time limits wait through it (tests pass one that does not wait)
        self.output = output  # ships each job's whole output to monitoring (None: only the tail)
        self.revision = 0  # of the last assignments update applied (sent again on reconnect)
        self._watch_failing = False
        self.registration: Registration | None = None
        self.devices: list[GpuDevice] = []
        self.driver_version = ""
        self.running: dict[str, _Running] = {}
        self.unhealthy: frozenset[int] = frozenset()
        self._settled: OrderedDict[tuple[str, int], None] = OrderedDict()  # (job id, attempt)
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
                asyncio.create_task(self._watch_loop(stop), name="assignments"),
                asyncio.create_task(self._metrics_loop(stop), name="metrics"),
                asyncio.create_task(self.reports.run(self.scheduler, self.node_id, stop), name="reports"),
            ]
            await supervise(stop, *loops)
        finally:
            await self._shutdown_jobs()
            await self.reports.flush(self.scheduler, self.node_id(), timeout=3.0)
            if self.output is not None:
                await self.output.close(timeout=3.0)

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
        pending = self.reports.pending
        finished = {r.job_id for r in pending if isinstance(r, JobFinished)}
        started = {r.job_id for r in pending if isinstance(r, JobStarted)}
        adopted = []
        for job, handle in self.runner.adopt():
            if job.job_id in finished:
                handle.release()
                continue
            adopted.append((job, handle))
            if job.job_id not in started:
                # Its start report was sent before it reached the disk and may have died with that agent
                # (the scheduler takes a repeat as a no-op).
                self.reports.put(JobStarted(job.job_id, job.started_at or self.clock(), attempt=job.attempt))
        return adopted

    def _recover_pending_reports(self) -> None:
        """Reports a previous run left: a job that reported "started" but no "finished", and that no
        supervisor still runs, was lost with that agent: report it lost (after the start)."""
        finished = {r.job_id: r.attempt for r in self.reports.pending if isinstance(r, JobFinished)}
        adopted = {job.job_id for job, _ in self._adopted}
        for report in self.reports.pending:
            if isinstance(report, JobStarted) and report.job_id not in finished.keys() | adopted:
                # The start report does not say which attempt; the scheduler's assignment will (an
                # assignment of an unsettled attempt that is "running" is reported lost once more,
                # which the scheduler ignores as a repeat).
                self.reports.put(JobFinished(report.job_id, self.clock(), error_message=LOST_MESSAGE))
                finished[report.job_id] = 0
        for job_id, attempt in finished.items():
            self._settle(job_id, attempt)

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
                    cpu_cores=self.config.cpu_cores,
                    ram_mb=self.config.ram_mb,
                    labels=self.config.labels,
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

    async def _watch_loop(self, stop: asyncio.Event) -> None:
        """Watch the scheduler's assignments for this node until ``stop``, reconnecting with backoff.
        The backoff starts over once a stream has delivered something."""
        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Unreachable),
                wait=wait_exponential_jitter(multiplier=0.2, max=self.config.watch_backoff_max, jitter=0.2),
                sleep=lambda seconds: _pause(stop, seconds),
                before_sleep=self._log_watch_failure,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    if not stop.is_set():
                        await self._watch_once(stop)

    async def _watch_once(self, stop: asyncio.Event) -> None:
        """One stream: apply every update as it comes. Returns when the stream ended after delivering
        something (reconnect at once); raises Unreachable when it failed before, or went silent."""
        node_id = self.node_id()
        if node_id is None:
            await _pause(stop, 0.1)
            return
        stream = self.scheduler.watch_assignments(node_id, self.revision)
        stopping = asyncio.ensure_future(stop.wait())
        receiving: asyncio.Future[AssignmentsUpdate] | None = None
        delivered = False
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait(
                    {receiving, stopping},
                    timeout=self.config.watch_idle_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if receiving not in done:
                    if stop.is_set():
                        return
                    raise Unreachable(
                        f"the assignments stream was silent for {self.config.watch_idle_seconds}s"
                    )
                try:
                    update = receiving.result()
                except StopAsyncIteration:
                    if delivered:
                        return
                    raise Unreachable("the scheduler ended the assignments stream at once") from None
                except Unreachable:
                    if delivered:
                        log.warning("the assignments stream broke; watching again")
                        return
                    raise
                if not delivered and self._watch_failing:
                    log.info("the scheduler answers again")
                delivered, self._watch_failing = True, False
                await self._apply_update(update)
        finally:
            stopping.cancel()
            if receiving is not None and not receiving.done():
                receiving.cancel()  # the stream must be idle before it can be closed
                with contextlib.suppress(BaseException):
                    await receiving
            await stream.aclose()

    def _log_watch_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if not self._watch_failing:  # one line per outage, not one per retry
            log.warning("cannot watch assignments from the scheduler (%s)", exc, extra={"reason": str(exc)})
        self._watch_failing = True

    async def _apply_update(self, update: AssignmentsUpdate) -> None:
        await self.apply(list(update.assignments))
        self.revision = max(self.revision, update.revision)

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
                self._settle(action.report.job_id, action.report.attempt)

    async def _start(self, a: Assignment) -> None:
        try:
            handle = await self.runner.spawn(
                a.job_id,
                a.command,
                a.gpu_indices,
                organization_id=a.organization_id,
                limits=a.limits(),
                distributed=a.distributed,
                attempt=a.attempt,
                time_limit_seconds=a.time_limit_seconds,
                image=a.image,
                gpu_uuids=self._gpu_uuids(a.gpu_indices),
            )
        except (OSError, ValueError) as exc:
            log.warning("job could not start", extra={"job_id": a.job_id, "reason": str(exc)})
            prom.JOB_START_FAILURES.inc()
            self.reports.put(
                JobFinished(
                    a.job_id, self.clock(), error_message=f"could not start: {exc}", attempt=a.attempt
                )
            )
            self._settle(a.job_id, a.attempt)
            return
        started = self.clock()
        self.reports.put(JobStarted(a.job_id, started, attempt=a.attempt))
        prom.JOB_STARTS.inc()
        log.info(
            "job started",
            extra={
                "job_id": a.job_id,
                "pid": handle.pid,
                "gpu_indices": list(a.gpu_indices),
                "rank": a.distributed.rank,
                "world_size": a.distributed.world_size,
                "time_limit_s": a.time_limit_seconds or None,
            },
        )
        job = LocalJob(
            a.job_id,
            a.gpu_indices,
            a.organization_id,
            attempt=a.attempt,
            time_limit_seconds=a.time_limit_seconds,
            started_at=started,
        )
        self._follow(job, handle)

    def _gpu_uuids(self, indices: tuple[int, ...]) -> tuple[str, ...]:
        """The UUIDs of these GPUs (the runner fences device nodes and gives containers GPUs by them)."""
        by_index = {d.index: d.uuid for d in self.devices}
        return tuple(by_index[i] for i in indices) if all(i in by_index for i in indices) else ()

    def _follow(self, job: LocalJob, handle: JobHandle) -> None:
        entry = self.running[job.job_id] = _Running(job, handle)
        prom.JOBS_RUNNING.set(len(self.running))
        self._spawn_task(self._watch(job.job_id), f"job-{job.job_id}")
        if self.output is not None:
            self.output.follow(job, handle, node_id=self.node_id)
        if job.time_limit_seconds > 0:
            entry.limit_task = self._spawn_task(self._enforce_time_limit(job), f"limit-{job.job_id}")

    async def _enforce_time_limit(self, job: LocalJob) -> None:
        limit = job.time_limit_seconds
        began = job.started_at or self.clock()
        await self._sleep_until(began + timedelta(seconds=warning_after(limit)))
        entry = self.running.get(job.job_id)
        if entry is None or entry.job.stopping:
            return
        left = max(int((began + timedelta(seconds=limit) - self.clock()).total_seconds()), 0)
        log.warning(
            "job nears its time limit; it is stopped when the limit is reached",
            extra={"job_id": job.job_id, "time_limit_s": limit, "left_s": left},
        )
        prom.TIME_LIMIT_WARNINGS.inc()
        entry.handle.annotate(warning_message(limit, left))
        await self._sleep_until(began + timedelta(seconds=limit))
        entry = self.running.get(job.job_id)
        if entry is None or entry.job.stopping:
            return
        log.warning(
            "job reached its time limit; stopping it", extra={"job_id": job.job_id, "time_limit_s": limit}
        )
        entry.handle.annotate(f"time limit of {limit} s reached: stopping the job")
        self._stop(job.job_id, cancelled=False, error_message=timed_out_message(limit), timed_out=True)

    async def _sleep_until(self, at: datetime) -> None:
        await self.sleep(max((at - self.clock()).total_seconds(), 0.0))

    async def _watch(self, job_id: str) -> None:
        entry = self.running[job_id]
        exited = await entry.handle.wait()
        if self.output is not None:
            self.output.ended(job_id, entry.job.attempt)  # before release() removes the job's files
        self.running.pop(job_id, None)
        if entry.limit_task is not None:
            entry.limit_task.cancel()
        prom.JOBS_RUNNING.set(len(self.running))
        error = entry.error_message or exited.error
        if not error and not entry.cancelled and exited.signal_name:
            error = f"killed by {exited.signal_name}"
        prom.finished(exited.exit_code, entry.cancelled, error, timed_out=entry.timed_out)
        report = JobFinished(
            job_id,
            exited.finished_at or self.clock(),
            exit_code=exited.exit_code,
            output_tail=exited.output_tail,
            cancelled=entry.cancelled,
            error_message=error,
            timed_out=entry.timed_out,
            attempt=entry.job.attempt,
        )
        self.reports.put(report)
        self._settle(job_id, entry.job.attempt)
        await self.reports.kept(report)
        entry.handle.release()  # only now: a crash before the report is kept must find the job again
        log.info(
            "job finished",
            extra={
                "job_id": job_id,
                "exit_code": exited.exit_code,
                "cancelled": entry.cancelled,
                "error": error,
            },
        )

    def _stop(
        self, job_id: str, cancelled: bool, error_message: str | None = None, *, timed_out: bool = False
    ) -> None:
        entry = self.running.get(job_id)
        if entry is None or entry.job.stopping:
            return
        entry.job = replace(entry.job, stopping=True)
        entry.cancelled, entry.timed_out = cancelled, timed_out
        entry.error_message = error_message or ("" if cancelled else ORPHANED_MESSAGE)
        log.info("stopping job", extra={"job_id": job_id, "cancelled": cancelled, "timed_out": timed_out})
        self._spawn_task(entry.handle.terminate(self.config.kill_grace_seconds), f"stop-{job_id}")

    async def _shutdown_jobs(self) -> None:
        for job_id in list(self.running):
            self._stop(job_id, cancelled=False, error_message=SHUTDOWN_MESSAGE)
        if self._tasks:
            # Every watcher ends once its process is gone, which terminate() bounds by the grace period.
            await asyncio.wait(list(self._tasks), timeout=self.config.kill_grace_seconds + 5)

    def _settle(self, job_id: str, attempt: int) -> None:
        key = (job_id, attempt)
        self._settled[key] = None
        self._settled.move_to_end(key)
        while len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)

    def _spawn_task(self, coro, name: str) -> asyncio.Task:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

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


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
