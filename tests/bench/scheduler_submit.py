"""The scheduler's CPU per submit and per job lifecycle, against a bare-minimum baseline.

    python -m tests.bench.scheduler_submit [--submits 2000] [--jobs 1000] [--nodes 8] [--gpus-per-node 8]
                                           [--clients 16] [--profile DIR]

Starts PostgreSQL and the broker (embedded, in a temporary folder), migrates the scheduler's schema and
runs the real ``python -m services.scheduler`` process against them, with identity's ``Authenticate`` and
fleet's ``AuthenticateNode`` answered by small fakes in this process (their CPU is not the scheduler's).
Only the scheduler process's CPU (user + system, every thread, read from the OS) is counted.

* **baseline**: the bare minimum a durable submit costs a Python process: one asyncpg transaction per
  submit (scope, one job row, one outbox row), ``--clients`` at a time, measured in a fresh process of
  its own, before and after the other phases (the ratios are to the mean).
* **submit**: ``--submits`` gRPC ``SubmitJob`` calls from ``--clients`` concurrent clients while no node
  exists (each job waits with a "why pending" answer the loop writes): the scheduler's CPU per submit,
  its reaction included.
* **lifecycle**: ``--jobs`` one-GPU jobs on ``--nodes`` x ``--gpus-per-node`` GPUs, driven through
  submit -> scheduled -> running -> succeeded by fake agents in this process (``WatchAssignments``, then
  ``ReportJobs`` started and finished): the scheduler's CPU per job.

``--profile DIR`` runs the scheduler under cProfile (event-loop thread) and leaves one ``.prof`` per
phase in DIR. The last line is one JSON object; ratios are to the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import psutil
from gpufleet.v1 import (
    common_pb2,
    fleet_pb2,
    fleet_pb2_grpc,
    identity_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

from shared import api_keys, node_identity
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.ports import free_port
from shared.embedded.postgres import EmbeddedPostgres
from shared.migrate import migrate_service, role_name
from tests.fake_node_registry import FakeNodeRegistry

ROOT = Path(__file__).resolve().parents[2]


class _Identity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.keys: dict[str, common_pb2.Principal] = {}

    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        principal = self.keys.get(request.api_key)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return principal


class _Fleet(fleet_pb2_grpc.FleetServiceServicer):
    async def ListGpuTypes(self, request, context):  # type: ignore[no-untyped-def]
        return fleet_pb2.ListGpuTypesResponse(gpu_types=[fleet_pb2.GpuType(name="h100-80gb")])


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def _reset(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(
            "TRUNCATE scheduler.jobs, scheduler.job_status_history, scheduler.gpu_allocations, "
            "scheduler.outbox, scheduler.gpu_inventory CASCADE"
        )
    finally:
        await conn.close()


async def _seed_gpus(url: str, nodes: list[uuid.UUID], per_node: int) -> None:
    """The GPU projection as fleet's events would leave it (the shared pool)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": "scheduler"})
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.system', 'on', true)")
            await conn.executemany(
                "INSERT INTO gpu_inventory (gpu_id, node_id, node_name, device_index, gpu_type, "
                "memory_total_mb, cost_per_hour, organization_id, status, revision, node_cpu_cores, "
                "node_ram_mb, node_labels, updated_at) "
                "VALUES ($1, $2, $3, $4, 'h100-80gb', 81920, $5, NULL, 'available', 1, 64, 524288, '{}', now())",
                [
                    (uuid.uuid4(), node, f"bench-{node.hex[:6]}", i, Decimal("2.99"))
                    for node in nodes
                    for i in range(per_node)
                ],
            )
    finally:
        await conn.close()


class _Scheduler:
    """``python -m services.scheduler`` as a child process."""

    def __init__(self, env: dict[str, str], target: str, profile: Path | None, log: Path) -> None:
        self.target = target
        cmd = [sys.executable]
        if profile is not None:
            cmd += ["-m", "cProfile", "-o", str(profile)]
        cmd += ["-m", "services.scheduler"]
        self._log = log.open("ab")
        self.popen = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.proc = psutil.Process(self.popen.pid)

    async def ready(self, key: tuple[tuple[str, str], ...]) -> None:
        async with grpc.aio.insecure_channel(self.target) as ch:
            stub = scheduler_pb2_grpc.JobServiceStub(ch)
            deadline = time.monotonic() + 60
            while True:
                try:
                    await stub.ListJobs(scheduler_pb2.ListJobsRequest(limit=1), metadata=key, timeout=2)
                    return
                except grpc.aio.AioRpcError:
                    if self.popen.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the scheduler did not start") from None
                    await asyncio.sleep(0.2)

    async def settle(self, seconds: float = 1.5) -> None:
        """Let start-up work (lease, rebuild, first cycles) pass before counting."""
        await asyncio.sleep(seconds)

    def cpu(self) -> float:
        return _cpu_s(self.proc)

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


async def _submit_all(target: str, key, n: int, clients: int) -> list[float]:
    """``n`` SubmitJob calls from ``clients`` concurrent callers; their latencies in seconds."""
    latencies: list[float] = []
    left = iter(range(n))
    async with grpc.aio.insecure_channel(target) as ch:
        stub = scheduler_pb2_grpc.JobServiceStub(ch)

        async def client() -> None:
            for i in left:
                t0 = time.perf_counter()
                await stub.SubmitJob(
                    scheduler_pb2.SubmitJobRequest(command="true", gpu_count=1, name=f"bench-{i}"),
                    metadata=key,
                    timeout=60,
                )
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


class _Agents:
    """One fake agent per node: takes its assignments from the stream and reports each new job started,
    then succeeded (two ReportJobs calls per update, as the real agent's batches would)."""

    def __init__(self, target: str, nodes: dict[uuid.UUID, tuple[tuple[str, str], ...]], total: int) -> None:
        self.target, self.nodes, self.total = target, nodes, total
        self.finished: set[str] = set()
        self.done = asyncio.Event()

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as ch:
            stub = scheduler_pb2_grpc.NodeAgentServiceStub(ch)
            tasks = [asyncio.create_task(self._node(stub, n, md)) for n, md in self.nodes.items()]
            try:
                await self.done.wait()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _node(self, stub, node: uuid.UUID, md) -> None:  # type: ignore[no-untyped-def]
        reported: set[str] = set()
        stream = stub.WatchAssignments(scheduler_pb2.WatchAssignmentsRequest(node_id=str(node)), metadata=md)
        async for update in stream:
            new = [a for a in update.assignments if a.job_id not in reported and a.status == "scheduled"]
            if not new:
                continue
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            reported.update(a.job_id for a in new)
            await stub.ReportJobs(
                scheduler_pb2.ReportJobsRequest(
                    node_id=str(node),
                    reports=[
                        scheduler_pb2.JobReport(
                            job_id=a.job_id,
                            started=scheduler_pb2.ReportJobStartedRequest(
                                node_id=str(node), job_id=a.job_id, started_at=now
                            ),
                        )
                        for a in new
                    ],
                ),
                metadata=md,
                timeout=30,
            )
            await stub.ReportJobs(
                scheduler_pb2.ReportJobsRequest(
                    node_id=str(node),
                    reports=[
                        scheduler_pb2.JobReport(
                            job_id=a.job_id,
                            finished=scheduler_pb2.ReportJobFinishedRequest(
                                node_id=str(node),
                                job_id=a.job_id,
                                has_exit_code=True,
                                exit_code=0,
                                finished_at=now,
                                attempt=a.attempt,
                            ),
                        )
                        for a in new
                    ],
                ),
                metadata=md,
                timeout=30,
            )
            self.finished.update(a.job_id for a in new)
            if len(self.finished) >= self.total:
                self.done.set()


_BASELINE_CHILD = """
import asyncio, sys, time, uuid
import asyncpg

async def main(url, n, clients):
    pool = await asyncpg.create_pool(url, min_size=clients, max_size=clients,
                                     server_settings={"search_path": "scheduler"})
    org = uuid.uuid4()
    left = iter(range(n))
    async def client():
        for _ in left:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT set_config('app.org_id', '', true), set_config('app.system', 'on', true)")
                job = uuid.uuid4()
                await conn.execute("INSERT INTO jobs (id, organization_id, command, gpu_count) VALUES ($1, $2, 'true', 1)",
                                   job, org)
                await conn.execute("INSERT INTO outbox (event_id, topic, key, event_type, headers, payload) "
                                   "VALUES ($1, 'gpufleet.jobs.v1', $2, 'submitted', '{}', $3)",
                                   uuid.uuid4(), str(job), b"x" * 600)
    t0 = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    print(time.process_time() - t0)
    await pool.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _baseline(url: str, n: int, clients: int) -> float:
    """CPU seconds of the bare-minimum submits, in a process of their own."""
    out = subprocess.run(
        [sys.executable, "-c", _BASELINE_CHILD, url, str(n), str(clients)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


async def run(args: argparse.Namespace) -> dict:
    state = Path(tempfile.mkdtemp(prefix="gpufleet-bench-submit-"))
    pg = EmbeddedPostgres(state / "pg", durable=False)
    kafka = EmbeddedKafka(log_path=state / "tansu.log")
    pg.start()
    kafka.start()
    fakes = grpc.aio.server()
    identity, registry = _Identity(), FakeNodeRegistry()
    try:
        await migrate_service(pg.admin_url, "scheduler", password=pg.password_for(role_name("scheduler")))
        url = pg.url_for(role_name("scheduler"))
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, fakes)
        fleet_pb2_grpc.add_NodeRegistryServiceServicer_to_server(registry, fakes)
        fleet_pb2_grpc.add_FleetServiceServicer_to_server(_Fleet(), fakes)
        fake_target = f"127.0.0.1:{fakes.add_insecure_port('127.0.0.1:0')}"
        await fakes.start()
        secret = api_keys.new_key()
        identity.keys[secret] = common_pb2.Principal(
            organization_id=str(uuid.uuid4()),
            user_id=str(uuid.uuid4()),
            role="member",
            api_key_id=str(uuid.uuid4()),
        )
        key = (("authorization", f"Bearer {secret}"),)
        target = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "GPUFLEET_LOG_LEVEL": "WARNING",
                "GPUFLEET_SCHEDULER_DATABASE_URL": url,
                "GPUFLEET_SCHEDULER_GRPC_LISTEN": target,
                "GPUFLEET_FLEET_GRPC_TARGET": fake_target,
                "GPUFLEET_IDENTITY_GRPC_TARGET": fake_target,
                "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
                "GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER": "false",
                "GPUFLEET_KAFKA_TOPIC_PARTITIONS": "3",
                "GPUFLEET_OPS_LISTEN": "",
            }
        )
        profile_dir = Path(args.profile) if args.profile else None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)

        def prof(name: str) -> Path | None:
            return profile_dir / f"{name}.prof" if profile_dir is not None else None

        # -- baseline ------------------------------------------------------------------------------
        base_cpu = _baseline(url, args.submits, args.clients)
        await _reset(pg.admin_url)
        base_ms = base_cpu * 1000 / args.submits

        # -- submits (no node: every job waits with a reason) ---------------------------------------
        sched = _Scheduler(env, target, prof("submit"), state / "scheduler-submit.log")
        try:
            await sched.ready(key)
            await sched.settle()
            cpu0, t0 = sched.cpu(), time.perf_counter()
            lat = await _submit_all(target, key, args.submits, args.clients)
            wall = time.perf_counter() - t0
            await asyncio.sleep(1.0)  # the loop's reaction to the last submits (why-pending writes)
            submit_cpu = sched.cpu() - cpu0  # that second counted too: it is the submits' work
        finally:
            sched.stop()
        await _reset(pg.admin_url)
        submit_ms = submit_cpu * 1000 / args.submits

        # -- whole lifecycles -------------------------------------------------------------------------
        nodes = [uuid.uuid4() for _ in range(args.nodes)]
        creds: dict[uuid.UUID, tuple[tuple[str, str], ...]] = {}
        for node in nodes:
            credential = node_identity.new_credential()
            registry.nodes[credential] = node
            creds[node] = (("authorization", f"Bearer {credential}"),)
        await _seed_gpus(url, nodes, args.gpus_per_node)
        sched = _Scheduler(env, target, prof("lifecycle"), state / "scheduler-lifecycle.log")
        try:
            await sched.ready(key)
            agents = _Agents(target, creds, args.jobs)
            agent_task = asyncio.create_task(agents.run())
            await sched.settle()
            cpu0, t0 = sched.cpu(), time.perf_counter()
            await _submit_all(target, key, args.jobs, args.clients)
            await asyncio.wait_for(agents.done.wait(), timeout=600)
            life_wall = time.perf_counter() - t0
            life_cpu = sched.cpu() - cpu0
            await agent_task
        finally:
            sched.stop()
        life_ms = life_cpu * 1000 / args.jobs
        # The baseline again, after the scheduler's phases: the machine's load drifts during a run, and
        # the ratios are to the mean of both measurements.
        base_ms = (base_ms + _baseline(url, args.submits, args.clients) * 1000 / args.submits) / 2
    finally:
        await fakes.stop(None)
        kafka.stop()
        pg.stop()
    return {
        "bench": "scheduler_submit",
        "submits": args.submits,
        "jobs": args.jobs,
        "gpus": args.nodes * args.gpus_per_node,
        "clients": args.clients,
        "baseline_cpu_ms_per_submit": round(base_ms, 3),
        "submit_cpu_ms": round(submit_ms, 3),
        "submit_cpu_ratio": round(submit_ms / base_ms, 2),
        "submits_per_s": round(args.submits / wall, 1),
        "submit_p50_ms": round(_pct(lat, 0.5) * 1000, 1),
        "submit_p99_ms": round(_pct(lat, 0.99) * 1000, 1),
        "lifecycle_cpu_ms": round(life_ms, 3),
        "lifecycle_cpu_ratio": round(life_ms / base_ms, 2),
        "lifecycle_jobs_per_s": round(args.jobs / life_wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--profile", default="", help="a folder for one cProfile file per phase")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(
        f"baseline (asyncpg: scope + job row + outbox row): {result['baseline_cpu_ms_per_submit']} ms CPU/submit\n"
        f"scheduler, submit: {result['submit_cpu_ms']} ms CPU/submit ({result['submit_cpu_ratio']}x baseline), "
        f"{result['submits_per_s']}/s, p50 {result['submit_p50_ms']} ms, p99 {result['submit_p99_ms']} ms\n"
        f"scheduler, lifecycle: {result['lifecycle_cpu_ms']} ms CPU/job ({result['lifecycle_cpu_ratio']}x), "
        f"{result['lifecycle_jobs_per_s']} jobs/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
