"""Chaos soak: jobs through REST while services, the agent and the broker are SIGKILLed and brought back.

    make chaos            (python -m tests.chaos.soak --jobs 1000 --gpus 32 --kill-every 4 --seed N)

Starts its own embedded stack in a temporary folder (PostgreSQL, the broker, every service, one agent
with ``--gpus`` simulated GPUs) under the devstack supervisor, submits ``--jobs`` short jobs through the
gateway (retrying with the same ``Idempotency-Key`` while the gateway is down), and every
``--kill-every`` seconds SIGKILLs one process: a service at random, now and then the agent, and the
broker once mid-run (it loses every topic; the outboxes replay). When every job is final it checks, from
the outside only (REST and the public topics), that no job was lost or created twice, none ran twice or
again after its finish, no GPU was held by two jobs at once, and every job that held GPUs was billed
exactly once with the REST cost equal to the cost event (see ``tests.chaos.invariants``).

It prints a summary and, as its last line, one JSON object; the exit status is 1 on any violation.
The e2e suite runs a small variant of :func:`run_chaos` on its own stack (tests/e2e/test_3_chaos.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from shared.contracts import jobs as jobs_topic
from shared.contracts import topics
from shared.devstack import DEFAULT_PORTS, Stack, service_db_passwords
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, free_port
from shared.embedded.supervisor import RestartPolicy, Supervisor
from shared.migrate import migrate
from tests.chaos import invariants
from tests.chaos.invariants import Event

SERVICES = ("gateway", "scheduler", "billing", "notification", "fleet", "identity", "monitoring")
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Restarts come back quickly so a few minutes hold many kills (the default policy is unit-tested).
SOAK_POLICY = RestartPolicy(initial_delay=0.5, max_delay=5.0, stable_after=20.0)


@dataclass(frozen=True)
class ChaosConfig:
    jobs: int = 1000
    kill_every: float = 4.0
    seed: int = 0
    broker_kills: int = 1
    agent_kill_chance: float = 0.1
    max_agent_kills: int = 3
    concurrency: int = 16
    command: str = "sleep 0.2"
    deadline_s: float = 900.0


@dataclass
class ChaosMonkey:
    """Picks and SIGKILLs one victim per round; the broker once, when half the jobs are submitted."""

    stack: Stack
    broker: EmbeddedKafka
    cfg: ChaosConfig
    rng: random.Random
    say: Callable[[str], None]
    kills: Counter[str] = field(default_factory=Counter)

    def pick(self, submitted: int) -> str | None:
        if (
            self.kills["kafka"] < self.cfg.broker_kills
            and submitted >= self.cfg.jobs // 2
            and self.broker.alive()
        ):
            return "kafka"
        agent = self.stack.processes["agent"]
        if (
            self.kills["agent"] < self.cfg.max_agent_kills
            and self.rng.random() < self.cfg.agent_kill_chance
            and agent.alive()
        ):
            return "agent"
        alive = [s for s in SERVICES if self.stack.processes[s].alive()]
        return self.rng.choice(alive) if alive else None

    def kill(self, victim: str, finished: int = 0) -> None:
        if victim == "kafka":
            self.broker.kill()
        else:
            self.stack.processes[victim].kill()
        self.kills[victim] += 1
        self.say(f"x SIGKILL {victim} ({finished}/{self.cfg.jobs} jobs final)")

    async def run(self, finished: Callable[[], int], done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.cfg.kill_every)
            if not done.is_set() and (victim := self.pick(count := finished())):
                self.kill(victim, count)


class Tap:
    """Reads the public job and cost topics from the beginning, and again after the broker is lost."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.job_events: list[Event] = []
        self.cost_events: list[Event] = []
        self.finished: set[str] = set()  # job ids with a terminal event seen
        self._task: asyncio.Task | None = None

    def _add(self, record) -> None:
        h = {k: v.decode() for k, v in record.headers}
        if "ce_id" not in h or record.value is None:
            return
        when = datetime.fromisoformat(h.get("ce_time", "1970-01-01T00:00:00Z").replace("Z", "+00:00"))
        key = record.key.decode() if record.key else ""
        event = Event(h["ce_id"], h.get("ce_type", ""), when, key, json.loads(record.value))
        (self.job_events if record.topic == topics.JOBS else self.cost_events).append(event)
        if event.type in jobs_topic.TERMINAL_EVENTS:
            self.finished.add(key)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topics.JOBS,
            topics.COSTS,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
        )

    async def start(self) -> None:
        async def pump() -> None:
            while True:
                consumer = self._consumer()
                try:
                    await consumer.start()
                    async for record in consumer:
                        self._add(record)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the broker is being killed on purpose: read again
                    await asyncio.sleep(1)
                finally:
                    with contextlib.suppress(Exception):
                        await consumer.stop()

        self._task = asyncio.create_task(pump())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def read_all(self) -> None:
        """One fresh read of everything the broker holds now (what the outboxes replayed included)."""
        consumer = self._consumer()
        await consumer.start()
        try:
            while batch := await consumer.getmany(timeout_ms=3000):  # until a fetch finds nothing more
                for records in batch.values():
                    for record in records:
                        self._add(record)
        finally:
            await consumer.stop()


async def _call(
    api: httpx.AsyncClient, method: str, url: str, deadline: float, retries: Counter[str] | None = None, **kw
) -> httpx.Response:
    """A REST call that rides out a killed gateway or service: retried until ``deadline``.
    ``retries`` counts each retry by its cause (an HTTP status, or the transport error's name)."""
    delay = 0.2
    while True:
        try:
            reply = await api.request(method, url, **kw)
            if reply.status_code not in RETRYABLE:
                return reply
            cause = str(reply.status_code)
        except httpx.TransportError as exc:
            cause = type(exc).__name__
        if retries is not None:
            retries[cause] += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {url}: no answer before the deadline")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


@dataclass
class Submitter:
    api: httpx.AsyncClient
    cfg: ChaosConfig
    deadline: float
    submitted: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    refused: list[invariants.Violation] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)  # by cause: what the clients saw

    async def submit(self, index: int, sem: asyncio.Semaphore) -> None:
        key = f"chaos-{uuid.uuid4()}"
        body = {"command": self.cfg.command, "gpu_count": 1, "name": f"chaos-{index}"}
        async with sem:
            # Same key on every try: a request that landed but whose answer was lost is not a second job.
            reply = await _call(
                self.api,
                "POST",
                "/jobs",
                self.deadline,
                self.retries,
                json=body,
                headers={"Idempotency-Key": key},
            )
        if reply.status_code in (200, 201):
            self.submitted[key] = reply.json()["id"]
        else:
            self.refused.append(
                invariants.Violation("refused", key, f"{reply.status_code} {reply.text[:200]}")
            )

    async def run(self) -> None:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        await asyncio.gather(*(self.submit(i, sem) for i in range(self.cfg.jobs)))


async def _pages(api: httpx.AsyncClient, url: str, field_name: str, deadline: float) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        reply = await _call(api, "GET", url, deadline, params=params)
        reply.raise_for_status()
        page = reply.json()
        items += page[field_name]
        if not (cursor := page.get("next_cursor")):
            return items


async def _wait_final(api: httpx.AsyncClient, ids: set[str], deadline: float) -> None:
    while True:
        listed = await _pages(api, "/jobs", "jobs", deadline)
        open_ = {j["id"] for j in listed if j["status"] not in invariants.TERMINAL}
        if not open_ and ids <= {j["id"] for j in listed}:
            return
        if time.monotonic() > deadline:
            return  # the checks report what is not final
        await asyncio.sleep(1.0)


async def _snapshots(api: httpx.AsyncClient, deadline: float) -> dict[str, dict]:
    """Every job of the organization with its status history (one GET per job: lists omit history)."""
    listed = await _pages(api, "/jobs", "jobs", deadline)
    sem = asyncio.Semaphore(16)

    async def one(job_id: str) -> dict:
        async with sem:
            reply = await _call(api, "GET", f"/jobs/{job_id}", deadline)
            reply.raise_for_status()
            return reply.json()

    return {j["id"]: j for j in await asyncio.gather(*(one(j["id"]) for j in listed))}


async def _costs(api: httpx.AsyncClient, deadline: float) -> dict[str, list[dict]]:
    by_job: dict[str, list[dict]] = defaultdict(list)
    for cost in await _pages(api, "/costs", "costs", deadline):
        by_job[cost["job_id"]].append(cost)
    return by_job


def _billable(jobs: dict[str, dict]) -> set[str]:
    return {
        i
        for i, j in jobs.items()
        if j["status"] in invariants.TERMINAL and j.get("scheduled_at") and j.get("gpu_ids")
    }


async def run_chaos(
    stack: Stack,
    broker: EmbeddedKafka,
    supervisor: Supervisor,
    api_key: str,
    cfg: ChaosConfig,
    say: Callable[[str], None] = print,
) -> dict:
    """The soak on a started stack; ``supervisor`` (already holding its processes) is run here."""
    t0 = time.monotonic()
    deadline = t0 + cfg.deadline_s
    rng = random.Random(cfg.seed)
    tap = Tap(broker.bootstrap)
    await tap.start()
    sup_stop = asyncio.Event()
    sup_task = asyncio.create_task(supervisor.run(sup_stop, every=0.2))
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", headers=headers, timeout=10) as api:
        submitter = Submitter(api, cfg, deadline)
        monkey = ChaosMonkey(stack, broker, cfg, rng, say)
        done = asyncio.Event()
        chaos = asyncio.create_task(monkey.run(lambda: len(tap.finished), done))
        try:
            await submitter.run()
            submit_s = time.monotonic() - t0
            say(
                f"- {len(submitter.submitted)} jobs submitted in {submit_s:.1f}s; waiting for every job to finish"
            )
            await _wait_final(api, set(submitter.submitted.values()), deadline)
        finally:
            done.set()
            await chaos
        say(f"- chaos over after {time.monotonic() - t0:.1f}s ({sum(monkey.kills.values())} kills); settling")
        await stack.wait_ready(timeout=max(deadline - time.monotonic(), 30), supervised=True)
        jobs = await _snapshots(api, deadline)
        billable = _billable(jobs)
        settle = min(deadline, time.monotonic() + 120)
        while True:  # billing and the outbox replay catch up after the last kill
            rest_costs = await _costs(api, deadline)
            await tap.read_all()
            on_topic = {e.job_id for e in tap.cost_events}
            finished_on_topic = {e.job_id for e in tap.job_events if e.type in jobs_topic.TERMINAL_EVENTS}
            final = {i for i, j in jobs.items() if j["status"] in invariants.TERMINAL}
            if (billable <= set(rest_costs) and billable <= on_topic and final <= finished_on_topic) or (
                time.monotonic() > settle
            ):
                break
            await asyncio.sleep(2)
    sup_stop.set()
    await sup_task
    await tap.stop()
    violations = submitter.refused + invariants.check_all(
        submitter.submitted, jobs, tap.job_events, tap.cost_events, rest_costs
    )
    statuses = Counter(j["status"] for j in jobs.values())
    kinds = Counter(v.kind for v in violations)
    return {
        "jobs": cfg.jobs,
        "submitted": len(submitter.submitted),
        "seed": cfg.seed,
        "kills": sum(monkey.kills.values()),
        "kills_by_target": dict(sorted(monkey.kills.items())),
        "restarts": {k: v for k, v in sorted(supervisor.restarts.items()) if v},
        "statuses": dict(sorted(statuses.items())),
        "submit_retries": dict(sorted(submitter.retries.items())),
        "lost": kinds["lost"],
        "duplicates": kinds["duplicate"] + kinds["merged"],
        "not_final": kinds["not_final"],
        "two_attempts": kinds["two_attempts"] + kinds["two_allocations"] + kinds["gpu_double_booked"],
        "rerun_after_finish": kinds["rerun_after_finish"] + kinds["finished_twice"],
        "billing": kinds["cost_missing"]
        + kinds["billed_twice"]
        + kinds["cost_mismatch"]
        + kinds["billed_without_gpus"],
        "violation_kinds": dict(sorted(kinds.items())),
        "violations": [v.__dict__ for v in violations[:50]],
        "duration_s": round(time.monotonic() - t0, 1),
    }


async def soak(cfg: ChaosConfig, gpus: int) -> dict:
    """An embedded stack of its own in a temporary folder, the chaos run on it, then everything stopped."""
    state = Path(tempfile.mkdtemp(prefix="gpufleet-chaos-"))
    print(f"- state and logs in {state}", flush=True)
    pg = EmbeddedPostgres(state / "pg", durable=False)
    ports = {name: free_port() for name in DEFAULT_PORTS}  # never the defaults a `make dev` may want
    broker = EmbeddedKafka(port=ports["kafka"], log_path=state / "logs" / "tansu.log")
    pg.start()
    broker.start()
    stack = Stack(
        state,
        pg.port,
        broker.bootstrap,
        ports,
        secrets.token_urlsafe(24),
        agent_gpus=gpus,
        db_passwords=service_db_passwords(pg),
        extra_env={"GPUFLEET_LOG_LEVEL": "WARNING", "GPUFLEET_AGENT_KILL_GRACE_SECONDS": "2"},
    )
    try:
        await migrate(pg.admin_url, passwords=stack.db_passwords)
        await stack.start(timeout=180)
        org = await stack.create_organization("Chaos", "chaos@example.com")
        await _wait_gpus(stack, org.api_key.secret, gpus)
        say = _printer()
        supervisor = Supervisor(SOAK_POLICY, say=say, tail_lines=0)
        supervisor.add("postgres", pg)
        supervisor.add("kafka", broker)
        stack.supervise(supervisor)
        print(
            f"- stack up; {cfg.jobs} jobs on {gpus} simulated GPUs, a kill every {cfg.kill_every}s",
            flush=True,
        )
        report = await run_chaos(stack, broker, supervisor, org.api_key.secret, cfg, say)
    finally:
        stack.stop()
        broker.stop()
        pg.stop()
    if report["violations"]:
        print(f"- logs kept in {state / 'logs'}", flush=True)
    else:
        shutil.rmtree(state, ignore_errors=True)
    return report


async def _wait_gpus(stack: Stack, key: str, gpus: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(
        base_url=stack.gateway_url + "/v1", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        while len((await _call(api, "GET", "/gpus", deadline)).json().get("gpus", [])) < gpus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent's {gpus} GPUs did not register")
            await asyncio.sleep(0.3)


def _printer() -> Callable[[str], None]:
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {line}", flush=True)

    return say


def summary(report: dict) -> str:
    ok = not report["violations"]
    lines = [
        f"chaos soak {'PASSED' if ok else 'FAILED'}: {report['submitted']}/{report['jobs']} jobs, "
        f"{report['kills']} kills {report['kills_by_target']}, {report['duration_s']}s",
        f"  final statuses {report['statuses']}; restarts {report['restarts']}",
        f"  lost {report['lost']}, duplicates {report['duplicates']}, not final {report['not_final']}, "
        f"two attempts {report['two_attempts']}, re-run after finish {report['rerun_after_finish']}, "
        f"billing {report['billing']}",
    ]
    lines += [f"  ! {v['kind']} {v['job_id']}: {v['detail']}" for v in report["violations"][:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=32, help="simulated GPUs on the agent (at most 64)")
    parser.add_argument("--kill-every", type=float, default=4.0, help="seconds between two kills")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--agent-kill-chance", type=float, default=0.1)
    parser.add_argument("--deadline", type=float, default=900.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    cfg = ChaosConfig(
        jobs=args.jobs,
        kill_every=args.kill_every,
        seed=args.seed,
        agent_kill_chance=args.agent_kill_chance,
        deadline_s=args.deadline,
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the broker dies on purpose: no noise
    print(f"- chaos soak, seed {cfg.seed} (rerun with --seed {cfg.seed})", flush=True)
    report = asyncio.run(soak(cfg, args.gpus))
    print(summary(report), flush=True)
    print(json.dumps(report, default=str), flush=True)
    sys.exit(1 if report["violations"] else 0)


if __name__ == "__main__":
    main()
