"""CPU per job of the node agent and of its per-job processes, beside a bare fork+exec's.

    python -m tests.bench.agent_jobs                          (300 trivial jobs on 64 GPUs)
    python -m tests.bench.agent_jobs --jobs 500 --gpus 64 --command 'echo hi'

Starts the embedded broker in a temporary folder, a fake fleet and a fake scheduler (gRPC, in this
process), and the real agent as its own process (``python -m services.agent``: simulated GPUs, the
process runner with its sandbox, the fork server, output shipping to the broker, durable reports). The
fake scheduler keeps every GPU busy: it pushes the whole desired state on the assignments stream after
every change (as the real one does), one trivial one-GPU job per free GPU, and hands out the next job
when the agent reports one finished, until N jobs are done.

Measured, from the first assignment of the timed jobs until every one of them was reported finished
and the agent had a moment (``--settle``) to ship their output: utime + stime of

* the agent process (all its threads), from ``/proc/<pid>/stat``;
* its children: the fork server and every supervisor it forked (and, through each supervisor, which
  reaps its job's processes, the job's own processes): the fork server's utime + stime + cutime +
  cstime, plus the agent's own cutime + cstime (supervisors started as new interpreters, if any).

The baseline, in the same run: ``subprocess.run(["/bin/true"])`` N times (the CPU a bare fork + exec
costs, children's CPU by ``os.times()``), and ``/bin/sh -c <command>`` (what a job runs). The agent's
idle CPU per second (heartbeats, metrics) is measured before the jobs and reported beside. A warm-up
set of jobs runs first (imports, connections, the fork server's start). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

from shared import node_identity
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import free_port
from shared.errors import Unauthenticated
from shared.grpc import bearer, grpc_service, serve

TICKS = os.sysconf("SC_CLK_TCK")
TOKEN = node_identity.new_join_token()
CREDENTIAL = node_identity.new_credential()
ROOT = Path(__file__).resolve().parents[2]


def stat_times(pid: int, stat: Path | None = None) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of ``pid`` (or of the task whose ``stat`` is given) in seconds."""
    fields = (stat or Path(f"/proc/{pid}/stat")).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, (int(fields[13]) + int(fields[14])) / TICKS


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


class Cpu:
    """The agent's CPU and that of its children (the fork server and what it reaped), in seconds."""

    def __init__(self, agent_pid: int) -> None:
        self.agent_pid = agent_pid

    def forkserver(self) -> int | None:
        for pid in children_of(self.agent_pid):
            with contextlib.suppress(OSError):
                if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        return None

    def threads(self) -> dict[str, float]:
        """CPU seconds of the agent's live threads, summed by name (the event loop's is "python"; a
        worker thread that ended is counted in the process's total only)."""
        found: dict[str, float] = {}
        for task in Path(f"/proc/{self.agent_pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                name = (task / "comm").read_text().strip().rstrip("0123456789_")
                found[name] = found.get(name, 0.0) + stat_times(0, task / "stat")[0]
        return found

    def read(self) -> tuple[float, float]:
        own, reaped = stat_times(self.agent_pid)
        children = reaped
        fs = self.forkserver()
        if fs is not None:
            fs_own, fs_reaped = stat_times(fs)
            children += fs_own + fs_reaped
        return own, children


def require(context, joining: bool = False) -> None:
    presented = bearer(context)
    if presented != CREDENTIAL and not (joining and presented == TOKEN):
        raise Unauthenticated("invalid node credential")


@grpc_service
class Fleet(fleet_pb2_grpc.NodeRegistryServiceServicer):
    def __init__(self) -> None:
        self.node_id = str(uuid.uuid4())
        self.registered = asyncio.Event()

    async def RegisterNode(self, request, context):
        require(context, joining=True)
        self.registered.set()
        return fleet_pb2.RegisterNodeResponse(
            node_id=self.node_id,
            heartbeat_interval_seconds=5,
            gpus=[
                fleet_pb2.RegisteredGpu(
                    index=g.index, gpu_id=str(uuid.uuid5(uuid.NAMESPACE_URL, g.uuid)), gpu_type="a100-80gb"
                )
                for g in request.gpus
            ],
            node_credential=fleet_pb2.NodeCredential(node_id=self.node_id, credential=CREDENTIAL),
        )

    async def Heartbeat(self, request, context):
        require(context)
        return fleet_pb2.HeartbeatResponse(known=True)


@grpc_service
class Scheduler(scheduler_pb2_grpc.NodeAgentServiceServicer):
    """Keeps every GPU busy with queued jobs; pushes the whole desired state after each change."""

    def __init__(self, gpus: int, command: str) -> None:
        self.command = command
        self.free: deque[int] = deque(range(gpus))
        self.queue: deque[str] = deque()
        self.assignments: dict[str, scheduler_pb2.Assignment] = {}
        self.gpu_of: dict[str, int] = {}
        self.finished: dict[str, scheduler_pb2.JobFinishedReport] = {}
        self.revision = 0
        self.changed = asyncio.Condition()
        self.done = asyncio.Event()
        self.expected = 0
        self.org = str(uuid.uuid4())
        # job id -> monotonic time its assignment was pushed / its started / finished report arrived
        self.assigned_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}

    async def submit(self, n: int) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(n)]
        self.queue.extend(ids)
        self.expected += n
        self.done.clear()
        await self._place()
        return ids

    async def _place(self) -> None:
        placed = False
        while self.free and self.queue:
            job_id, gpu = self.queue.popleft(), self.free.popleft()
            self.gpu_of[job_id] = gpu
            self.assignments[job_id] = scheduler_pb2.Assignment(
                job_id=job_id,
                command=self.command,
                gpu_indices=[gpu],
                organization_id=self.org,
                status="scheduled",
            )
            self.assigned_at[job_id] = time.monotonic()
            placed = True
        if placed:
            await self._bump()

    async def _bump(self) -> None:
        async with self.changed:
            self.revision += 1
            self.changed.notify_all()

    async def WatchAssignments(self, request, context):
        require(context)
        sent = [-1]
        while True:
            async with self.changed:
                await self.changed.wait_for(lambda: self.revision != sent[0])
                sent[0] = self.revision
                update = scheduler_pb2.AssignmentsUpdate(
                    revision=sent[0], assignments=list(self.assignments.values())
                )
            yield update

    async def ReportJobs(self, request, context):
        require(context)
        done = []
        for report in request.reports:
            if report.HasField("started"):
                self.started_at.setdefault(report.job_id, time.monotonic())
                if report.job_id in self.assignments:
                    self.assignments[report.job_id].status = "running"
            elif report.job_id in self.assignments:
                self.finished_at.setdefault(report.job_id, time.monotonic())
                self.assignments.pop(report.job_id)
                self.free.append(self.gpu_of.pop(report.job_id))
                self.finished[report.job_id] = report.finished
                if len(self.finished) >= self.expected:
                    self.done.set()
            done.append(report.job_id)
        await self._place()
        return scheduler_pb2.ReportJobsResponse(acknowledged=done)


def baseline(n: int, argv: list[str]) -> float:
    """CPU ms per run of ``argv`` as a plain child (fork + exec + wait), children's times."""
    before = os.times()
    for _ in range(n):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    after = os.times()
    spent = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    # subprocess's own fork + exec costs land on this process: count them too (both sides of the fork).
    spent_self = (after.user - before.user) + (after.system - before.system)
    return (spent + spent_self) * 1000 / n


async def run_jobs(sched: Scheduler, n: int, timeout: float) -> list[str]:
    ids = await sched.submit(n)
    await asyncio.wait_for(sched.done.wait(), timeout)
    return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def probe_latency(sched: Scheduler, n: int) -> dict[str, float]:
    """One job at a time on an otherwise idle agent: from the push of its assignment to its started
    report, and to its finished report (ms, p50 and p90 over ``n`` jobs, a short pause between)."""
    start, finish = [], []
    for _ in range(n):
        [job_id] = await run_jobs(sched, 1, 60)
        t0 = sched.assigned_at[job_id]
        start.append((sched.started_at[job_id] - t0) * 1000)
        finish.append((sched.finished_at[job_id] - t0) * 1000)
        await asyncio.sleep(0.1)
    return {
        "start_ms_p50": round(percentile(start, 0.5), 2),
        "start_ms_p90": round(percentile(start, 0.9), 2),
        "finish_ms_p50": round(percentile(finish, 0.5), 2),
        "finish_ms_p90": round(percentile(finish, 0.9), 2),
    }


async def bench(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="gpufleet-bench-agent-"))
    tmp.chmod(0o711)  # the jobs' uids must reach their folders under it (the state folder stays 0700)
    # Not under /tmp as root: a job's private /tmp hides a jobs folder there, and its supervisor then
    # recreates the path inside (what a laptop's agent pays, not a GPU host's).
    jobs = Path(f"/var/lib/gpufleet/bench-jobs-{os.getpid()}") if os.geteuid() == 0 else tmp / "jobs"
    kafka = EmbeddedKafka(log_path=tmp / "kafka.log")
    kafka.start()
    fleet, sched = Fleet(), Scheduler(args.gpus, args.command)
    fleet_port, sched_port = free_port(), free_port()
    fleet_server, _ = await serve(
        f"127.0.0.1:{fleet_port}",
        [(fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server, fleet)],
        ["gpufleet.v1.NodeRegistryService"],
    )
    sched_server, _ = await serve(
        f"127.0.0.1:{sched_port}",
        [(scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server, sched)],
        ["gpufleet.v1.NodeAgentService"],
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "GPUFLEET_AGENT_GPU_BACKEND": "simulated",
        "GPUFLEET_AGENT_SIM_GPU_COUNT": str(args.gpus),
        "GPUFLEET_AGENT_HOSTNAME": f"bench-{uuid.uuid4().hex[:8]}",
        "GPUFLEET_AGENT_STATE_DIR": str(tmp / "state"),
        "GPUFLEET_AGENT_JOBS_DIR": str(jobs),
        "GPUFLEET_AGENT_JOIN_TOKEN": TOKEN,
        "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER": "false",
        "GPUFLEET_KAFKA_TOPIC_PARTITIONS": "3",
        "GPUFLEET_FLEET_GRPC_TARGET": f"127.0.0.1:{fleet_port}",
        "GPUFLEET_SCHEDULER_GRPC_TARGET": f"127.0.0.1:{sched_port}",
        "GPUFLEET_AGENT_CREDENTIAL_ROTATE_SECONDS": "0",
        "GPUFLEET_AGENT_CGROUP_PARENT": f"gpufleet-bench-{os.getpid()}",
    }
    argv = [sys.executable, "-m", "services.agent"]
    if args.profile:
        # The event loop's thread, by its CPU time (wall time there is mostly waiting, GIL included).
        code = (
            "import cProfile, runpy, sys, time; p = cProfile.Profile(time.thread_time); p.enable()\n"
            "try:\n    runpy.run_module('services.agent', run_name='__main__')\n"
            f"finally:\n    p.disable(); p.dump_stats({args.profile!r})"
        )
        argv = [sys.executable, "-c", code]
    with open(tmp / "agent.log", "wb") as log:  # noqa: ASYNC230 (once, before anything is measured)
        agent = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    try:
        async with asyncio.timeout(60):
            while not fleet.registered.is_set():
                if agent.poll() is not None:
                    raise SystemExit(f"the agent exited ({agent.returncode}): see {tmp / 'agent.log'}")
                await asyncio.sleep(0.1)
        cpu = Cpu(agent.pid)
        await run_jobs(sched, args.warmup, 120)
        await asyncio.sleep(args.settle)
        idle0, t0 = sum(cpu.read()), time.monotonic()
        await asyncio.sleep(args.idle)
        idle_per_s = (sum(cpu.read()) - idle0) / (time.monotonic() - t0)

        (own0, kids0), w0, threads0 = cpu.read(), time.monotonic(), cpu.threads()
        await run_jobs(sched, args.jobs, 600)
        wall = time.monotonic() - w0
        await asyncio.sleep(args.settle)
        own1, kids1 = cpu.read()
        threads = {
            k: round((v - threads0.get(k, 0.0)) * 1000 / args.jobs, 2) for k, v in cpu.threads().items()
        }
        latency = await probe_latency(sched, args.probes) if args.probes else {}
        failed = [r for r in sched.finished.values() if r.exit_code != 0 or r.error_message]
        if failed:
            raise SystemExit(f"{len(failed)} jobs failed, e.g. {failed[0]}")
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
        await sched_server.stop(0)
        await fleet_server.stop(0)
        kafka.stop()
        shutil.rmtree(jobs, ignore_errors=True)
        for parent in Path("/sys/fs/cgroup").glob(f"*/{env['GPUFLEET_AGENT_CGROUP_PARENT']}"):
            with contextlib.suppress(OSError):
                parent.rmdir()  # the jobs' parent group (each job's own went with it)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    base_true = baseline(args.jobs, ["/bin/true"])
    base_sh = baseline(args.jobs, ["/bin/sh", "-c", args.command])
    agent_ms = (own1 - own0) * 1000 / args.jobs
    children_ms = (kids1 - kids0) * 1000 / args.jobs
    total = agent_ms + children_ms
    return {
        "bench": "agent_jobs",
        "jobs": args.jobs,
        "gpus": args.gpus,
        "command": args.command,
        "jobs_per_s": round(args.jobs / wall, 1),
        "agent_cpu_ms_per_job": round(agent_ms, 2),
        "children_cpu_ms_per_job": round(children_ms, 2),
        "total_cpu_ms_per_job": round(total, 2),
        "agent_threads_cpu_ms_per_job": {k: v for k, v in sorted(threads.items()) if v},
        "agent_idle_cpu_ms_per_s": round(idle_per_s * 1000, 2),
        "baseline_true_cpu_ms": round(base_true, 2),
        "baseline_sh_cpu_ms": round(base_sh, 2),
        "ratio_total_to_true": round(total / base_true, 1) if base_true else None,
        "ratio_total_to_sh": round(total / base_sh, 1) if base_sh else None,
        "probes": args.probes,
        **{f"idle_{k}": v for k, v in latency.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--gpus", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--command", default="true")
    parser.add_argument(
        "--settle", type=float, default=1.5, help="seconds after the last finish, for shipping"
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--probes", type=int, default=30, help="single jobs timed afterwards, assignment -> reports"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument("--profile", default="", help="run the agent under cProfile, stats to this file")
    result = asyncio.run(bench(parser.parse_args()))
    print(
        f"agent {result['agent_cpu_ms_per_job']} ms/job + children {result['children_cpu_ms_per_job']} ms/job"
        f" = {result['total_cpu_ms_per_job']} ms/job ({result['jobs_per_s']} jobs/s); bare /bin/true"
        f" {result['baseline_true_cpu_ms']} ms, sh -c {result['baseline_sh_cpu_ms']} ms;"
        f" agent idle {result['agent_idle_cpu_ms_per_s']} ms/s; one job alone: assignment -> started"
        f" p50 {result.get('idle_start_ms_p50')} ms, -> finished p50 {result.get('idle_finish_ms_p50')} ms",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
