"""Our side: the embedded default (PostgreSQL, the broker, every service, one agent) in a temp folder.

Started as ``tests/chaos/soak.py`` starts its own: free ports (never the ones a ``make dev`` may hold),
an organization created through identity, and its API key used by every REST client. The agent
simulates ``gpus`` GPUs and runs each job's command for real (``true``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from shared.devstack import DEFAULT_PORTS, GRPC_SERVICES, Stack
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, free_port
from shared.migrate import migrate, role_name
from tests.bench.vs_slurm.measure import JobTimes, Probe

JOB = {"command": "true", "gpu_count": 1}
ACTIVE = ("queued", "scheduled", "running")
STARTED = frozenset({"running", "succeeded", "failed", "cancelled", "timed_out"})


def _epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


@dataclass
class OurStack:
    root: Path
    gpus: int
    submitters: int = 16
    name: str = "ours"
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedKafka | None = None
    stack: Stack | None = None
    api: httpx.AsyncClient | None = None
    server_probe_ms: list[tuple[float, float]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # more settings for every process

    async def start(self, timeout: float = 180.0) -> None:
        # durable=False as in the chaos soak: the benchmark measures scheduling, not fsync on this disk.
        if os.geteuid() == 0:
            self.root.chmod(0o711)  # PostgreSQL runs as an unprivileged user and must reach its folder
        self.pg = EmbeddedPostgres(self.root / "pg", durable=False)
        ports = {name: free_port() for name in DEFAULT_PORTS}
        self.broker = EmbeddedKafka(port=ports["kafka"], log_path=self.root / "logs" / "tansu.log")
        self.pg.start()
        self.broker.start()
        passwords = {svc: self.pg.password_for(role_name(svc)) for svc in GRPC_SERVICES}
        self.stack = Stack(
            self.root,
            self.pg.port,
            self.broker.bootstrap,
            ports,
            secrets.token_urlsafe(24),
            agent_gpus=self.gpus,
            extra_env={"GPUFLEET_LOG_LEVEL": "WARNING", **self.extra_env},
            db_passwords=passwords,
        )
        await migrate(self.pg.admin_url, passwords=passwords)
        await self.stack.start(timeout=timeout)
        org = await self.stack.create_organization("Bench", "bench@example.com")
        self.api = httpx.AsyncClient(
            base_url=self.stack.gateway_url + "/v1",
            headers={"Authorization": f"Bearer {org.api_key.secret}"},
            timeout=60,
            limits=httpx.Limits(max_connections=self.submitters + 4),
        )
        deadline = time.monotonic() + 60
        while len((await self.api.get("/gpus")).json().get("gpus", [])) < self.gpus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent's {self.gpus} GPUs did not register")
            await asyncio.sleep(0.3)

    async def close(self) -> None:
        if self.api is not None:
            await self.api.aclose()
        self.stop()

    def stop(self) -> None:
        """Everything that was started, each part even if stopping another failed."""
        try:
            if self.stack is not None:
                self.stack.stop()
        finally:
            try:
                if self.broker is not None:
                    self.broker.stop()
            finally:
                if self.pg is not None:
                    self.pg.stop()
                shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        if self.stack is None:
            return ""
        return "\n".join(f"--- {n}\n{p.log_tail(10)}" for n, p in self.stack.processes.items())

    # ------------------------------------------------------------------ the Side protocol

    def processes(self) -> dict[str, int]:
        assert self.stack and self.pg and self.broker and self.pg.proc and self.broker.proc
        out = {name: p.proc.pid for name, p in self.stack.processes.items() if p.proc is not None}
        out["postgres"] = self.pg.proc.pid
        out["broker"] = self.broker.proc.pid
        return out

    async def submit(self) -> str:
        assert self.api is not None
        reply = await self.api.post("/jobs", json=JOB)
        if reply.status_code != 201:
            raise RuntimeError(f"submit: {reply.status_code} {reply.text[:300]}")
        return str(reply.json()["id"])

    async def busy(self) -> bool:
        assert self.api is not None
        for status in ACTIVE:
            reply = await self.api.get("/jobs", params={"status": status, "limit": 1})
            reply.raise_for_status()
            if reply.json()["jobs"]:
                return True
        return False

    async def times(self, ids: Iterable[str]) -> dict[str, JobTimes]:
        assert self.api is not None
        wanted = set(ids)
        got: dict[str, JobTimes] = {}
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            reply = await self.api.get("/jobs", params=params)
            reply.raise_for_status()
            page = reply.json()
            for job in page["jobs"]:
                scheduled, finished = _epoch(job.get("scheduled_at")), _epoch(job.get("finished_at"))
                if job["id"] in wanted and scheduled and finished:
                    got[job["id"]] = JobTimes(scheduled, finished)
            if not (cursor := page.get("next_cursor")):
                return got

    async def probe_watched(self) -> Probe:
        """As :meth:`probe`, but following the job on ``GET /v1/jobs/{id}:watch`` (Server-Sent Events,
        one ``data:`` line of job JSON per change) instead of polling it: each change arrives as the
        scheduler commits it, so no poll interval is added to what is measured."""
        assert self.api is not None
        t0 = time.perf_counter()
        job_id = await self.submit()
        allocated = None
        async with self.api.stream("GET", f"/jobs/{job_id}:watch") as reply:
            reply.raise_for_status()
            async for line in reply.aiter_lines():
                if not line.startswith("data:"):
                    continue
                job = json.loads(line.removeprefix("data:"))
                now = (time.perf_counter() - t0) * 1000
                if job["status"] != "queued" and allocated is None:
                    allocated = now
                if job["status"] in STARTED:
                    return Probe(now if allocated is None else allocated, now)
        raise RuntimeError(f"job {job_id}: its watch ended before it ran")

    async def probe(self) -> Probe:
        assert self.api is not None
        t0 = time.perf_counter()
        job_id = await self.submit()
        allocated = None
        while True:
            reply = await self.api.get(f"/jobs/{job_id}")
            reply.raise_for_status()
            job = reply.json()
            now = (time.perf_counter() - t0) * 1000
            if job["status"] != "queued" and allocated is None:
                allocated = now
            if job["status"] in STARTED:
                created = _epoch(job["created_at"]) or 0.0
                self.server_probe_ms.append(
                    (
                        ((_epoch(job["scheduled_at"]) or created) - created) * 1000,
                        ((_epoch(job["started_at"]) or created) - created) * 1000,
                    )
                )
                return Probe(now if allocated is None else allocated, now)
            if now > 60_000:
                raise TimeoutError(f"job {job_id} still {job['status']} after 60 s")
            await asyncio.sleep(0.005)
