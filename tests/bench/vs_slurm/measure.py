"""What both sides are measured with: CPU time of process trees, percentiles, and the one driver.

The driver (:func:`measure`) runs the same script against any :class:`Side`: ``jobs`` trivial one-GPU
jobs from ``submitters`` concurrent clients, a wait until every one has ended and then until the side's
processes are back at their idle CPU rate (the work the jobs left behind, e.g. billing and monitoring
catching up on their events, is part of what they cost), each job's allocation and end read back from
the side itself, the CPU seconds its processes spent meanwhile, and then, with the whole side idle, a
sequential probe of submit -> running.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class JobTimes:
    """Wall-clock (epoch seconds) of one job's allocation and end, as the side itself recorded them."""

    allocated: float
    ended: float


@dataclass(frozen=True)
class Probe:
    """One idle-fleet job: from the start of its submit to the first poll that saw it allocated / running."""

    allocated_ms: float
    running_ms: float


class Side(Protocol):
    @property
    def name(self) -> str: ...

    def processes(self) -> dict[str, int]:
        """Every daemon of this side by name -> pid (the root of the tree that is charged to it)."""
        ...

    async def submit(self) -> str:
        """Submit one trivial one-GPU job; its id."""
        ...

    async def busy(self) -> bool:
        """Whether any job is still queued, allocated or running."""
        ...

    async def times(self, ids: Iterable[str]) -> dict[str, JobTimes]:
        """Allocation and end of each of ``ids`` (every one of them must have ended)."""
        ...

    async def probe(self) -> Probe:
        """Submit one job on the idle fleet and poll until it runs."""
        ...


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _own_and_reaped(pid: int) -> float:
    """utime+stime of ``pid`` plus cutime+cstime (its children that have been waited for)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the ")" the fields start at field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root``'s whole tree so far: every live member's own time, plus what each has reaped.

    A child that has ended and been waited for is in its parent's cutime, once; a live one is counted
    by itself, so no time is counted twice as processes come and go between two readings."""
    return sum(_own_and_reaped(pid) for pid in descendants(root))


def cpu_snapshot(processes: dict[str, int]) -> dict[str, float]:
    return {name: tree_cpu_seconds(pid) for name, pid in processes.items()}


def kill_tree(root: int, sig: int = signal.SIGKILL) -> None:
    for pid in reversed(descendants(root)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class RunResult:
    side: str
    gpus: int
    jobs: int
    submitters: int
    submit_per_s: float
    submit_ms_p50: float
    submit_ms_p99: float
    scheduled_per_s: float
    completed_per_s: float
    last_allocation_s: float  # after the first submit
    last_end_s: float
    cpu_s: float  # from the first submit until the side was quiet again (``settle_s`` after the last end)
    cpu_s_by_process: dict[str, float]
    idle_cpu_per_s: float = 0.0  # the side's CPU rate before the run, with nothing to do
    settle_s: float = 0.0  # from every job ended until the side's CPU was back at its idle rate
    probe_jobs: int = 0
    probe_running_ms_p50: float = math.nan
    probe_running_ms_p99: float = math.nan
    probe_allocated_ms_p50: float = math.nan
    probe_allocated_ms_p99: float = math.nan
    attempts: list[dict[str, float]] = field(default_factory=list)  # shorter runs that were redone
    notes: dict[str, object] = field(default_factory=dict)  # side-specific figures

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


async def _submit_all(side: Side, jobs: int, submitters: int) -> tuple[float, list[str], list[float]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)
    ids: list[str] = []
    latencies: list[float] = []

    async def client() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            ids.append(await side.submit())
            latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.time()
    await asyncio.gather(*(client() for _ in range(submitters)))
    return t0, ids, latencies


async def _wait_idle(side: Side, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await side.busy():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{side.name}: jobs still not finished after {timeout:.0f}s")
        await asyncio.sleep(1.0)  # one light poll a second: the same small load on both sides


IDLE_SAMPLE_S = 2.0  # how long the idle CPU rate is measured before a run
QUIET_WINDOW_S = 1.0  # the side is quiet when one such window costs no more than idle...
QUIET_SLACK = 0.05  # ... plus this many cores (noise: a poll, a heartbeat landing in the window)
QUIET_TIMEOUT_S = 120.0


def _cpu_total(procs: dict[str, int]) -> float:
    return sum(cpu_snapshot(procs).values())


async def idle_rate(procs: dict[str, int], seconds: float = IDLE_SAMPLE_S) -> float:
    """CPU seconds per second the side's processes spend with nothing to do."""
    c0, t0 = _cpu_total(procs), time.monotonic()
    await asyncio.sleep(seconds)
    return (_cpu_total(procs) - c0) / (time.monotonic() - t0)


async def wait_quiet(procs: dict[str, int], idle: float, timeout: float = QUIET_TIMEOUT_S) -> float:
    """Wait until a window of QUIET_WINDOW_S costs at most the idle rate (plus slack); seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await idle_rate(procs, QUIET_WINDOW_S) <= idle + QUIET_SLACK:
            break
    return time.monotonic() - start


async def one_run(side: Side, gpus: int, jobs: int, submitters: int, timeout: float) -> RunResult:
    procs = side.processes()
    idle = await idle_rate(procs)
    before = cpu_snapshot(procs)
    t0, ids, latencies = await _submit_all(side, jobs, submitters)
    submit_s = time.time() - t0
    await _wait_idle(side, timeout)
    settled_s = await wait_quiet(procs, idle)
    after = cpu_snapshot(procs)
    times = await side.times(ids)
    if len(times) != len(ids):
        raise RuntimeError(f"{side.name}: {len(ids) - len(times)} of {len(ids)} jobs have no times")
    last_alloc = max(t.allocated for t in times.values()) - t0
    last_end = max(t.ended for t in times.values()) - t0
    by_process = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    return RunResult(
        side=side.name,
        gpus=gpus,
        jobs=jobs,
        submitters=submitters,
        submit_per_s=jobs / submit_s,
        submit_ms_p50=percentile(latencies, 50),
        submit_ms_p99=percentile(latencies, 99),
        scheduled_per_s=jobs / last_alloc,
        completed_per_s=jobs / last_end,
        last_allocation_s=last_alloc,
        last_end_s=last_end,
        cpu_s=sum(by_process.values()),
        cpu_s_by_process=by_process,
        idle_cpu_per_s=idle,
        settle_s=settled_s,
    )


async def measure(
    side: Side,
    gpus: int,
    jobs: int,
    submitters: int,
    probe_jobs: int,
    min_seconds: float,
    timeout: float,
    say=print,
) -> RunResult:
    """One configuration; a run that allocated its last job sooner than ``min_seconds`` after the
    first submit is redone once with proportionally more jobs (the short one stays in ``attempts``)."""
    result = await one_run(side, gpus, jobs, submitters, timeout)
    say(f"  {side.name} {gpus} GPUs: {_line(result)}")
    if min_seconds and result.last_allocation_s < min_seconds:
        more = math.ceil(jobs * min_seconds / max(result.last_allocation_s, 0.1) * 1.15)
        say(f"  {side.name}: {result.last_allocation_s:.1f}s < {min_seconds:.0f}s, again with {more} jobs")
        short = result
        result = await one_run(side, gpus, more, submitters, timeout)
        result.attempts.append(
            {k: getattr(short, k) for k in ("jobs", "scheduled_per_s", "last_allocation_s")}
        )
        say(f"  {side.name} {gpus} GPUs: {_line(result)}")
    if probe_jobs:
        probes = [await side.probe() for _ in range(probe_jobs)]
        running = [p.running_ms for p in probes]
        allocated = [p.allocated_ms for p in probes]
        result.probe_jobs = probe_jobs
        result.probe_running_ms_p50 = percentile(running, 50)
        result.probe_running_ms_p99 = percentile(running, 99)
        result.probe_allocated_ms_p50 = percentile(allocated, 50)
        result.probe_allocated_ms_p99 = percentile(allocated, 99)
        say(
            f"  {side.name} idle probe x{probe_jobs}: submit->running p50 {result.probe_running_ms_p50:.0f} ms, "
            f"p99 {result.probe_running_ms_p99:.0f} ms"
        )
    return result


def _line(r: RunResult) -> str:
    return (
        f"{r.jobs} jobs, submit {r.submit_per_s:.1f}/s (p50 {r.submit_ms_p50:.0f} ms, p99 "
        f"{r.submit_ms_p99:.0f} ms), scheduled {r.scheduled_per_s:.2f}/s over {r.last_allocation_s:.1f}s, "
        f"completed {r.completed_per_s:.2f}/s, CPU {r.cpu_s:.1f}s (quiet {r.settle_s:.1f}s after the last end; "
        f"idle {r.idle_cpu_per_s * 1000:.0f} ms/s)"
    )
