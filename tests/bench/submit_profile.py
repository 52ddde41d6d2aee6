"""Where a submit's CPU goes: every process of the embedded stack, per submit.

    python -m tests.bench.submit_profile [--submits 1000] [--clients 16] [--gpus 8] [--spy gateway]

Starts the embedded default (as ``make bench-vs-slurm`` starts our side), lets it settle, measures each
service's idle CPU for ``--idle-seconds`` (the baseline of the same run: pollers, heartbeats, relays),
then submits ``--submits`` held one-GPU jobs (held: nothing is scheduled, so only the submit path runs)
from ``--clients`` concurrent REST clients and reads every process's CPU (utime+stime of
``/proc/<pid>/stat``) before and after. Per service it reports CPU ms per submit, and that minus the
idle CPU the same wall time would have cost (what the submits themselves cost). ``--spy NAME`` records a
py-spy profile (raw, for flame graphs) of that service during the submits, when py-spy is installed.

``--batch N`` adds a second phase in the same run, after the single submits (its baseline): the same
``--clients`` submit ``--batch-calls`` batches of N held jobs each (``POST /v1/jobs:batchCreate``). For
both phases it reports jobs/s, the per-call p50/p99 and CPU per job; ``batch_vs_single`` is the ratio of
their jobs/s. The last line is one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.bench.vs_slurm.ours import OurStack

SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification", "gateway", "agent")


def _children() -> dict[str, int]:
    """This process's children that are the stack's services, by name."""
    found: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        for name in SERVICES:
            if f"services.{name}" in cmdline:
                found[name] = int(stat.parent.name)
    return found


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpus(pids: dict[str, int]) -> dict[str, float]:
    return {name: _cpu(pid) for name, pid in pids.items()}


JOB = {"command": "true", "gpu_count": 1, "hold": True}  # held: nothing is scheduled, only submits run


async def _phase(
    api: httpx.AsyncClient,
    pids: dict[str, int],
    *,
    calls: int,
    clients: int,
    path: str,
    body: dict,
) -> tuple[dict[str, float], list[float], float]:
    """``calls`` POSTs of ``body`` to ``path`` from ``clients`` at once: every process's CPU seconds
    when they began, each call's latency, and the wall time of the submits."""
    gate = asyncio.Semaphore(clients)
    latencies: list[float] = []

    async def one() -> None:
        async with gate:
            t = time.perf_counter()
            r = await api.post(path, json=body)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 201:
                raise RuntimeError(f"submit refused: {r.status_code} {r.text[:300]}")

    start = _cpus(pids)
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    submit_wall = time.perf_counter() - t0
    return start, latencies, submit_wall


def _figures(
    jobs: int,
    calls: int,
    clients: int,
    wall: float,
    latencies: list[float],
    spent: dict[str, float],
    idle_cost: dict[str, float],
) -> dict:
    """A phase's figures; ``idle_cost``: the CPU seconds each process would have spent idle meanwhile."""
    latencies = sorted(latencies)
    per_job = {k: round(v * 1000 / jobs, 3) for k, v in spent.items()}
    beyond_idle = {k: max(0.0, v - idle_cost[k]) * 1000 / jobs for k, v in spent.items()}
    return {
        "jobs": jobs,
        "calls": calls,
        "clients": clients,
        "jobs_per_s": round(jobs / wall, 1),
        "p50_ms": round(latencies[calls // 2] * 1000, 1),
        "p99_ms": round(latencies[min(calls - 1, int(calls * 0.99))] * 1000, 1),
        "cpu_ms_per_job": per_job,
        "cpu_ms_per_job_total": round(sum(per_job.values()), 2),
        "cpu_ms_per_job_total_beyond_idle": round(sum(beyond_idle.values()), 2),
    }


async def run(args: argparse.Namespace) -> dict:
    root = Path(tempfile.mkdtemp(prefix="gpufleet-submit-profile-"))
    stack = OurStack(root, gpus=args.gpus, submitters=args.clients)
    await stack.start()
    batch: dict | None = None
    try:
        assert stack.api is not None
        await asyncio.sleep(args.settle_seconds)
        pids = _children()
        before = _cpus(pids)
        await asyncio.sleep(args.idle_seconds)
        idle = {k: (v - before[k]) / args.idle_seconds for k, v in _cpus(pids).items()}  # CPU s per s
        spy = None
        if args.spy and shutil.which("py-spy"):
            spy = await asyncio.create_subprocess_exec(
                *(
                    "py-spy",
                    "record",
                    "-p",
                    str(pids[args.spy]),
                    "-o",
                    args.spy_out,
                    "-f",
                    "raw",
                    "-r",
                    "200",
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        start, latencies, submit_wall = await _phase(
            stack.api,
            pids,
            calls=args.submits,
            clients=args.clients,
            path="/jobs",
            body=JOB,
        )
        t0 = time.perf_counter() - submit_wall
        await asyncio.sleep(args.drain_seconds)  # consumers finish the submits' events
        wall = time.perf_counter() - t0
        end = _cpus(pids)
        if spy is not None:
            spy.send_signal(2)
            await spy.wait()
        if args.batch:
            calls = args.batch_calls or 10 * args.clients
            b_start, b_latencies, b_wall = await _phase(
                stack.api,
                pids,
                calls=calls,
                clients=args.clients,
                path="/jobs:batchCreate",
                body={"jobs": [JOB] * args.batch},
            )
            await asyncio.sleep(args.drain_seconds)
            b_end = _cpus(pids)
            b_total = b_wall + args.drain_seconds
            batch = _figures(
                calls * args.batch,
                calls,
                args.clients,
                b_wall,
                b_latencies,
                {k: b_end[k] - b_start[k] for k in pids},
                {k: idle[k] * b_total for k in pids},
            ) | {"batch": args.batch}
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    latencies.sort()
    n = args.submits
    per_submit = {k: round((end[k] - start[k]) * 1000 / n, 3) for k in pids}
    beyond_idle = {k: round(max(0.0, end[k] - start[k] - idle[k] * wall) * 1000 / n, 3) for k in pids}
    result = {
        "submits": n,
        "clients": args.clients,
        "submits_per_s": round(n / submit_wall, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 1),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 1),
        "cpu_ms_per_submit": per_submit,
        "cpu_ms_per_submit_beyond_idle": beyond_idle,
        "idle_cpu_ms_per_s": {k: round(v * 1000, 1) for k, v in idle.items()},
        "cpu_ms_per_submit_total": round(sum(per_submit.values()), 2),
        "cpu_ms_per_submit_total_beyond_idle": round(sum(beyond_idle.values()), 2),
    }
    if batch is not None:
        result["batch"] = batch
        result["batch_vs_single_jobs_per_s"] = round(batch["jobs_per_s"] / result["submits_per_s"], 2)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--submits", type=int, default=1000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--settle-seconds", type=float, default=10.0)
    p.add_argument("--idle-seconds", type=float, default=15.0)
    p.add_argument("--drain-seconds", type=float, default=3.0)
    p.add_argument("--spy", choices=SERVICES, default=None)
    p.add_argument("--spy-out", default="submit-profile.txt")
    p.add_argument(
        "--batch",
        type=int,
        nargs="?",
        const=100,
        default=0,
        help="also submit batches of N jobs (alone: 100)",
    )
    p.add_argument("--batch-calls", type=int, default=0, help="batches to submit (default: 10 per client)")
    result = asyncio.run(run(p.parse_args()))
    for name, ms in sorted(result["cpu_ms_per_submit"].items(), key=lambda kv: -kv[1]):
        print(
            f"{name:13} {ms:7.3f} ms/submit ({result['cpu_ms_per_submit_beyond_idle'][name]:.3f} beyond idle)"
        )
    print(f"{result['submits_per_s']} submits/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    if "batch" in result:
        b = result["batch"]
        print(
            f"batches of {b['batch']}: {b['jobs_per_s']} jobs/s ({result['batch_vs_single_jobs_per_s']}x single), "
            f"per call p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, {b['cpu_ms_per_job_total']} ms CPU per job"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
