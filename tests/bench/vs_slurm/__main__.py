"""``make bench-vs-slurm``: this system on its embedded default against Slurm, on this machine, now.

    python -m tests.bench.vs_slurm                      # 8 and 64 GPUs, ≥1,000 jobs and ≥30 s per run
    python -m tests.bench.vs_slurm --quick              # a short smoke run of the harness itself
    python -m tests.bench.vs_slurm --gpus 8 --jobs 2000 --sides ours,slurm-tuned

For each GPU count: our stack (fresh, in a temporary folder), then Slurm as shipped, then Slurm tuned
(each a fresh one-node cluster with that many fake GPUs). Each gets the same trivial one-GPU job
(``true``) from the same number of concurrent clients, then an idle-fleet probe of sequential jobs.
Prints a Markdown table and, as its last line, one JSON object with every figure. Installs Slurm with
apt if it is missing and we are root; otherwise prints the command and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.bench.vs_slurm import slurm
from tests.bench.vs_slurm.measure import RunResult, measure, percentile
from tests.bench.vs_slurm.ours import OurStack
from tests.bench.vs_slurm.report import ratios, table

SIDES = ("ours", *slurm.PROFILES)


def _say(line: str) -> None:
    print(line, flush=True)


async def run_ours(args: argparse.Namespace, gpus: int) -> RunResult:
    side = OurStack(Path(tempfile.mkdtemp(prefix="gpufleet-vs-slurm-")), gpus, args.submitters)
    try:
        _say(f"- ours, {gpus} GPUs: starting the embedded stack in {side.root}")
        await side.start()
        result = await measure(
            side, gpus, args.jobs, args.submitters, args.probe_jobs, args.min_seconds, args.timeout, _say
        )
        if side.server_probe_ms:
            result.notes["probe_server_scheduled_ms_p50"] = percentile(
                [a for a, _ in side.server_probe_ms], 50
            )
            result.notes["probe_server_started_ms_p50"] = percentile([b for _, b in side.server_probe_ms], 50)
        if args.probe_jobs:
            # The same probe, the job followed on its watch stream instead of polled (Slurm's side has no
            # such stream: the table compares the polled figures).
            watched = [await side.probe_watched() for _ in range(args.probe_jobs)]
            running = [p.running_ms for p in watched]
            result.notes["probe_watched_running_ms_p50"] = percentile(running, 50)
            result.notes["probe_watched_running_ms_p99"] = percentile(running, 99)
            result.notes["probe_watched_allocated_ms_p50"] = percentile([p.allocated_ms for p in watched], 50)
            _say(
                f"  ours idle probe x{args.probe_jobs}, watched (GET /v1/jobs/{{id}}:watch): submit->running "
                f"p50 {percentile(running, 50):.0f} ms, p99 {percentile(running, 99):.0f} ms"
            )
        return result
    except Exception:
        _say(side.log_tail())
        raise
    finally:
        await side.close()


async def run_slurm(args: argparse.Namespace, gpus: int, profile: slurm.Profile) -> RunResult:
    root = Path(tempfile.mkdtemp(prefix=f"{profile.name}-"))
    cluster = slurm.SlurmCluster(root, gpus, profile, args.slurm_submitters)
    try:
        _say(f"- {profile.name}, {gpus} GPUs: config and daemons in {root}")
        await cluster.start()
        result = await measure(
            cluster,
            gpus,
            args.jobs,
            args.slurm_submitters,
            args.probe_jobs,
            args.min_seconds,
            args.timeout,
            _say,
        )
        result.notes["slurm_settings"] = dict(profile.settings)
        return result
    except Exception:
        _say(cluster.log_tail())
        raise
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


async def run(args: argparse.Namespace) -> list[RunResult]:
    results: list[RunResult] = []
    for gpus in args.gpus:
        for side in args.sides:
            if side == "ours":
                results.append(await run_ours(args, gpus))
            else:
                results.append(await run_slurm(args, gpus, slurm.PROFILES[side]))
    return results


def _slurm_version() -> str:
    try:
        return subprocess.run(
            [slurm._sbin("slurmctld"), "-V"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "unknown"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.vs_slurm", description=__doc__.split("\n")[0])
    p.add_argument(
        "--gpus", default="8,64", help="comma-separated GPU counts (at most 64: the simulator's cap)"
    )
    p.add_argument("--jobs", type=int, default=1000, help="jobs per run (raised to last --min-seconds)")
    p.add_argument("--min-seconds", type=float, default=30.0, help="a shorter run is redone with more jobs")
    p.add_argument(
        "--probe-jobs", type=int, default=50, help="sequential idle-fleet jobs for submit->running"
    )
    p.add_argument("--submitters", type=int, default=16, help="concurrent REST clients on our side")
    p.add_argument(
        "--slurm-submitters", type=int, default=None, help="concurrent sbatch (default --submitters)"
    )
    p.add_argument("--sides", default=",".join(SIDES), help=f"any of {','.join(SIDES)}")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds a run may take to drain")
    p.add_argument("--keep", action="store_true", help="keep the Slurm folders (configs, logs)")
    p.add_argument(
        "--quick", action="store_true", help="harness smoke: 8 GPUs, 100 jobs, 10 probes, no 30 s rule"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.gpus, args.jobs, args.probe_jobs, args.min_seconds = "8", 100, 10, 0.0
    args.gpus = [int(g) for g in str(args.gpus).split(",") if g]
    args.sides = [s for s in args.sides.split(",") if s]
    if unknown := [s for s in args.sides if s not in SIDES]:
        p.error(f"unknown sides {unknown}; choose from {SIDES}")
    if any(not 1 <= g <= 64 for g in args.gpus):
        p.error("--gpus: each count must be 1..64")
    args.slurm_submitters = args.slurm_submitters or args.submitters
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if any(s != "ours" for s in args.sides):
        slurm.ensure_installed()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    # SIGTERM as Ctrl-C: asyncio.run then cancels the run, and every finally stops its daemons.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started, load0 = time.time(), os.getloadavg()
    results = asyncio.run(run(args))
    print("\n" + table(results) + "\n", flush=True)
    summary = {
        "gpus": args.gpus,
        "jobs": args.jobs,
        "min_seconds": args.min_seconds,
        "submitters": args.submitters,
        "slurm_submitters": args.slurm_submitters,
        "slurm_version": _slurm_version(),
        "cores": os.cpu_count(),
        "load_avg_before": round(load0[0], 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "duration_s": round(time.time() - started, 1),
        "results": [r.as_dict() for r in results],
        "ratios": {k: {m: round(v, 3) for m, v in d.items()} for k, d in ratios(results).items()},
    }
    print(json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()
