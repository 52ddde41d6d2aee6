"""Throughput smoke on the embedded default: jobs per second through submit -> succeeded.

    make bench            (or: python -m tests.bench.smoke --jobs 200 --gpus 8)

Starts PostgreSQL, the broker and every service in a temporary folder, submits N trivial jobs (`true`,
1 GPU each) through the REST gateway as fast as it accepts them, and waits until all succeeded. The
baseline, measured in the same run on the same machine, is running the same N commands as plain local
subprocesses, GPUs_count at a time; the report gives both rates and their ratio (these machines are noisy,
so only the ratio means something across runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path

import httpx

from shared.devstack import Stack, choose_ports, service_db_passwords
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres
from shared.migrate import migrate


async def baseline(n: int, parallel: int) -> float:
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", "true")
            await proc.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def run(n: int, gpus: int) -> dict:
    state = Path(tempfile.mkdtemp(prefix="gpufleet-bench-"))
    pg = EmbeddedPostgres(state / "pg", durable=True)
    kafka = EmbeddedKafka(log_path=state / "tansu.log")
    pg.start()
    kafka.start()
    ports = choose_ports({})
    ports = {k: v for k, v in ports.items()}
    stack = Stack(
        state,
        pg.port,
        kafka.bootstrap,
        ports,
        secrets.token_urlsafe(16),
        agent_gpus=gpus,
        db_passwords=service_db_passwords(pg),
        extra_env={"GPUFLEET_LOG_LEVEL": "WARNING"},
    )
    try:
        await migrate(pg.admin_url, passwords=stack.db_passwords)
        await stack.start(timeout=120)
        org = await stack.create_organization("Bench", "bench@example.com")
        headers = {"Authorization": f"Bearer {org.api_key.secret}"}
        async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", headers=headers, timeout=30) as api:
            while len((await api.get("/gpus")).json().get("gpus", [])) < gpus:
                await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(16)

            async def submit() -> str:
                async with sem:
                    r = await api.post("/jobs", json={"command": "true", "gpu_count": 1})
                    r.raise_for_status()
                    return r.json()["id"]

            ids = await asyncio.gather(*(submit() for _ in range(n)))
            submitted = time.perf_counter() - t0
            pending = set(ids)
            while pending:
                page = (await api.get("/jobs", params={"status": "succeeded", "limit": 200})).json()
                cursor = page.get("next_cursor")
                done = {j["id"] for j in page["jobs"]}
                while cursor:
                    page = (
                        await api.get("/jobs", params={"status": "succeeded", "limit": 200, "cursor": cursor})
                    ).json()
                    done |= {j["id"] for j in page["jobs"]}
                    cursor = page.get("next_cursor")
                pending -= done
                if pending:
                    await asyncio.sleep(0.25)
            total = time.perf_counter() - t0
        base = await baseline(n, gpus)
        system = n / total
        return {
            "jobs": n,
            "gpus": gpus,
            "submit_rate_jobs_per_s": round(n / submitted, 1),
            "submit_to_succeeded_jobs_per_s": round(system, 2),
            "baseline_local_subprocess_jobs_per_s": round(base, 1),
            "ratio_system_to_baseline": round(system / base, 4),
        }
    finally:
        stack.stop()
        kafka.stop()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--gpus", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.jobs, args.gpus)), indent=2))


if __name__ == "__main__":
    main()
