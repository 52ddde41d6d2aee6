"""CPU per job event of the notification and billing processes, beside a no-op consumer's.

    python -m tests.bench.consumers_cpu                    (300 job lifecycles per run)
    python -m tests.bench.consumers_cpu --jobs 100 --webhooks

Starts PostgreSQL and the broker in a temporary folder, migrates billing's and notification's schemas,
and for each service runs two subprocesses in turn, each on a fresh broker:

* **baseline**: a consumer of the same topics over the same machinery (``subscribe_batch``, the same
  batch size, one system transaction per batch in the service's schema as its role) whose handler only
  claims the batch's event ids (``claim_many``): the floor that fetching, decoding and claiming cost;
* **service**: the real ``python -m services.<name>`` (consumers, outbox relay, delivery worker, ...).

Each subprocess first consumes a warm-up set of lifecycles, then is left idle for a moment (its idle
CPU per second is reported), then N job lifecycles are published, paced at ``--rate`` events per second
(0: all at once): per job ``submitted``, ``scheduled``, ``started`` and ``succeeded`` on the job topic
(key: the job, one GPU allocated at a fixed price) and, for notification, the job's ``cost.recorded``
on the cost topic, as billing would publish it. The CPU the subprocess spent (utime + stime from
``/proc/<pid>/stat``) from the first publish until everything is applied (notification: every event in
the organizations' logs, and with ``--webhooks`` every delivery sent; billing: every job billed once
and its cost event published by the relay), divided by the events it consumed, is the figure;
``ratio`` is service / baseline. The last line is one JSON object with the figures.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from shared.contracts import costs, jobs, topics
from shared.db import Database
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, free_port
from shared.events import Envelope
from shared.migrate import migrate_service, role_name

SERVICES = ("notification", "billing")
CONSUMED = {"notification": (topics.JOBS, topics.COSTS), "billing": (topics.JOBS,)}
GROUPS = {
    "notification": {topics.JOBS: "notification.job-webhooks", topics.COSTS: "notification.cost-events"},
    "billing": {topics.JOBS: "billing.job-costs"},
}
TICKS = os.sysconf("SC_CLK_TCK")
PRICE = Decimal("2.5000")
ORGS = 4


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ------------------------------------------------------------------------------------------ the events


def lifecycle(org: uuid.UUID, webhook_url: str | None) -> list[tuple[str, Envelope]]:
    """(topic, envelope) of one trivial job: submitted, scheduled, started, succeeded, cost recorded."""
    job_id, user_id = uuid.uuid4(), uuid.uuid4()
    created = datetime.now(UTC) - timedelta(seconds=30)
    scheduled, started, finished = (created + timedelta(seconds=s) for s in (1, 2, 12))
    alloc = [
        jobs.GpuAllocationV1(gpu_id=uuid.uuid4(), gpu_index=0, gpu_type="a100-80gb", cost_per_hour=PRICE)
    ]
    base: dict[str, Any] = dict(
        job_id=job_id,
        organization_id=org,
        user_id=user_id,
        name="bench",
        command="true",
        gpu_count=1,
        gpu_memory_mb=0,
        priority=50,
        webhook_url=webhook_url,
        created_at=created,
    )
    held = dict(allocation=alloc, node_id=uuid.uuid4(), scheduled_at=scheduled)
    snapshots = [
        (jobs.JOB_SUBMITTED, jobs.JobSnapshotV1(status="queued", **base), None),
        (jobs.JOB_SCHEDULED, jobs.JobSnapshotV1(status="scheduled", **base, **held), "queued"),
        (
            jobs.JOB_STARTED,
            jobs.JobSnapshotV1(status="running", started_at=started, **base, **held),
            "scheduled",
        ),
        (
            jobs.JOB_SUCCEEDED,
            jobs.JobSnapshotV1(
                status="succeeded",
                started_at=started,
                finished_at=finished,
                exit_code=0,
                output_tail="",
                **base,
                **held,
            ),
            "running",
        ),
    ]
    out: list[tuple[str, Envelope]] = [
        (
            topics.JOBS,
            Envelope(
                type=t,
                source="gpufleet/scheduler",
                data=jobs.JobEventV1(job=snap, previous_status=prev),
                subject=str(job_id),
                organization_id=str(org),
            ),
        )
        for t, snap, prev in snapshots
    ]
    seconds = Decimal(10).quantize(Decimal("0.000001"))
    cost = (PRICE * seconds / 3600).quantize(Decimal("0.00000001"))
    recorded = costs.CostRecordedV1(
        job_id=job_id,
        organization_id=org,
        user_id=user_id,
        total_cost=cost,
        gpu_count=1,
        held_seconds=seconds,
        start_time=scheduled,
        end_time=finished,
        attempt=1,
        outcome="succeeded",
        gross_cost=cost,
        lines=[
            costs.CostLineV1(
                gpu_id=alloc[0].gpu_id,
                gpu_type="a100-80gb",
                cost_per_hour=PRICE,
                start_time=scheduled,
                end_time=finished,
                seconds=seconds,
                cost=cost,
            )
        ],
    )
    out.append(
        (
            topics.COSTS,
            Envelope(
                type=costs.COST_RECORDED,
                source="gpufleet/billing",
                data=recorded,
                subject=str(job_id),
                organization_id=str(org),
            ),
        )
    )
    return out


@dataclass
class Workload:
    """Pre-encoded records of ``n`` lifecycles spread over the organizations, in publishing order."""

    orgs: list[uuid.UUID]
    records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    job_events: int = 0
    cost_events: int = 0
    jobs: int = 0
    webhook_jobs: int = 0

    def add(self, n: int, webhook_url: str | None, per_job_url: bool) -> None:
        lives = []
        for i in range(n):
            org = self.orgs[i % len(self.orgs)]
            url = webhook_url if per_job_url and webhook_url and i % 2 == 0 else None
            self.webhook_jobs += url is not None
            lives.append(lifecycle(org, url))
        self.jobs += n
        # Interleaved as a busy scheduler emits them: a wave of submits, then schedules, and so on.
        for step in range(5):
            for life in lives:
                topic, env = life[step]
                self.records.append((topic, str(env.subject).encode(), env.value(), env.headers()))
                if topic == topics.JOBS:
                    self.job_events += 1
                else:
                    self.cost_events += 1


# ------------------------------------------------------------------------------ a tiny webhook receiver


class Receiver:
    """Answers 204 to every POST (keep-alive, Content-Length bodies); counts the requests."""

    def __init__(self) -> None:
        self.count = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                await reader.readexactly(length)
                self.count += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


# ------------------------------------------------------------------------------ the no-op consumer


def noop_consumer(service: str) -> None:
    """``--noop-consumer``: subscribe to ``service``'s topics and only claim each batch's event ids."""
    from shared.consumers import claim_many, subscribe_batch
    from shared.kafka import make_broker
    from shared.settings import KafkaSettings

    settings = KafkaSettings()
    db = Database(os.environ["BENCH_DATABASE_URL"], service, pool_size=4)
    broker = make_broker(settings, f"bench-noop-{service}")
    models = {topics.JOBS: jobs.EVENT_TYPES, topics.COSTS: costs.EVENT_TYPES}
    for topic in CONSUMED[service]:
        consumer = "bench-noop." + GROUPS[service][topic]

        def handler(consumer: str = consumer) -> Any:
            async def handle(envelopes: list[Envelope]) -> None:
                async with db.transaction(system=True) as session:
                    await claim_many(session, consumer, [e.id for e in envelopes])

            return handle

        subscribe_batch(broker, topic, group_id=consumer, models=models[topic], handle=handler())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await broker.start()
        await stop.wait()
        await broker.stop()
        await db.dispose()

    asyncio.run(main())


# ------------------------------------------------------------------------------ one measured run


@dataclass
class Env:
    pg: EmbeddedPostgres
    state: Path
    urls: dict[str, str]
    dbs: dict[str, Database]


async def done_count(env: Env, service: str, kind: str, orgs: list[uuid.UUID]) -> dict:
    """What the subprocess has applied so far, in the terms its finish line is written in."""
    db = env.dbs[service]
    ids = [str(o) for o in orgs]
    async with db.transaction(system=True) as s:
        if kind == "baseline":
            n = (
                await s.execute(
                    text("SELECT count(*) FROM processed_events WHERE consumer LIKE 'bench-noop.%'")
                )
            ).scalar_one()
            return {"events": n}
        if service == "notification":
            logged = (
                await s.execute(
                    text("SELECT count(*) FROM event_log WHERE organization_id = ANY(CAST(:o AS uuid[]))"),
                    {"o": ids},
                )
            ).scalar_one()
            sent = (
                await s.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FROM webhook_deliveries "
                        "WHERE organization_id = ANY(CAST(:o AS uuid[]))"
                    ),
                    {"o": ids},
                )
            ).one()
            return {"events": logged, "delivered": sent[0], "deliveries": sent[1]}
        claimed = (
            await s.execute(
                text("SELECT count(*) FROM processed_events WHERE consumer = 'billing.job-costs'")
            )
        ).scalar_one()
        lines = (
            await s.execute(
                text("SELECT count(*) FROM cost_tracking WHERE organization_id = ANY(CAST(:o AS uuid[]))"),
                {"o": ids},
            )
        ).scalar_one()
        published = (
            await s.execute(
                text(
                    "SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FROM outbox "
                    "WHERE topic = :t"
                ),
                {"t": topics.COSTS},
            )
        ).one()
        return {"claimed": claimed, "lines": lines, "published": published[0], "outbox": published[1]}


def finished(service: str, kind: str, got: dict, want: dict) -> bool:
    if kind == "baseline":
        return got["events"] >= want["events"]
    if service == "notification":
        return got["events"] >= want["events"] and got["delivered"] >= want["deliveries"]
    return all(got[k] >= want[k] for k in ("lines", "published", "claimed"))


async def wait_for(env: Env, service: str, kind: str, orgs: list[uuid.UUID], want: dict, proc: Any) -> dict:
    deadline = time.monotonic() + 600
    while True:
        got = await done_count(env, service, kind, orgs)
        if finished(service, kind, got, want):
            return got
        if proc.poll() is not None:
            raise RuntimeError(f"{service} {kind} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service} {kind}: got {got}, want {want}")
        await asyncio.sleep(0.1)


def expected(service: str, kind: str, w: Workload, before: dict, deliveries: int) -> dict:
    """The finish line after ``w`` on top of what was counted ``before``."""
    if kind == "baseline":
        n = w.job_events + (w.cost_events if service == "notification" else 0)
        return {"events": before.get("events", 0) + n}
    if service == "notification":
        return {
            "events": before["events"] + w.job_events + w.cost_events,
            "deliveries": before["delivered"] + deliveries,
        }
    return {
        "lines": before["lines"] + w.jobs,
        "claimed": before["claimed"] + w.jobs,
        "published": before["published"] + w.jobs,
    }


async def publish(bootstrap: str, records: list, rate: float) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        began = time.monotonic()
        futures = []
        for i, (topic, key, value, headers) in enumerate(records):
            if rate > 0:
                lag = began + i / rate - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def make_webhooks(env: Env, orgs: list[uuid.UUID], url: str) -> None:
    """One organization webhook per organization, subscribed to every job event and cost.recorded."""
    from services.notification.adapters.repository import sql_unit_of_work
    from services.notification.service_layer import commands, handlers
    from services.notification.service_layer.handlers import Dependencies

    deps = Dependencies(uow=sql_unit_of_work(env.dbs["notification"]), allow_private_targets=True)
    names = tuple(n for n in handlers.events.EVENT_NAMES)
    for org in orgs:
        await handlers.create_webhook(commands.CreateWebhook(org, url, names), deps)


async def one_run(env: Env, service: str, kind: str, args: argparse.Namespace, receiver: Receiver) -> dict:
    kafka = EmbeddedKafka(log_path=env.state / f"tansu-{service}-{kind}.log")
    kafka.start()
    try:
        from shared.kafka import ensure_topics
        from shared.settings import KafkaSettings

        await ensure_topics(
            KafkaSettings(kafka_bootstrap_servers=kafka.bootstrap, kafka_topic_partitions=3),
            (topics.JOBS, topics.COSTS),
        )
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
        proc_env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
                "GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER": "false",
                "GPUFLEET_KAFKA_TOPIC_PARTITIONS": "3",
                "GPUFLEET_LOG_LEVEL": "WARNING",
                "GPUFLEET_IDENTITY_GRPC_TARGET": f"127.0.0.1:{free_port()}",  # never called here
                "GPUFLEET_OPS_LISTEN": f"127.0.0.1:{free_port()}",
                f"GPUFLEET_{service.upper()}_DATABASE_URL": env.urls[service],
                f"GPUFLEET_{service.upper()}_GRPC_LISTEN": f"127.0.0.1:{free_port()}",
                "GPUFLEET_NOTIFICATION_ALLOW_PRIVATE_TARGETS": "true",
                "BENCH_DATABASE_URL": env.urls[service],
            }
        )
        if service != "notification":
            proc_env.pop("GPUFLEET_NOTIFICATION_ALLOW_PRIVATE_TARGETS")
        cmd = (
            [sys.executable, "-m", "tests.bench.consumers_cpu", "--noop-consumer", service]
            if kind == "baseline"
            else [sys.executable, "-m", f"services.{service}"]
        )
        proc = spawn(cmd, proc_env, env.state / f"{service}-{kind}.log")
        try:
            orgs = [uuid.uuid4() for _ in range(ORGS)]
            hooks = args.webhooks and service == "notification" and kind == "service"
            url = receiver.url if hooks else None
            if hooks:
                await make_webhooks(env, orgs, receiver.url)
            # Warm-up: imports, pools, the group join, first statements; not measured.
            warm = Workload(orgs)
            warm.add(args.warmup, url, per_job_url=True)
            before = await done_count(env, service, kind, orgs)
            await publish(kafka.bootstrap, warm.records, 0)
            await wait_for(
                env, service, kind, orgs, expected(service, kind, warm, before, deliveries(warm, hooks)), proc
            )
            await asyncio.sleep(1.0)
            # Idle: what the process burns doing nothing (pollers, heartbeats).
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(args.idle)
            idle_rate = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
            w = Workload(orgs)
            w.add(args.jobs, url, per_job_url=True)
            before = await done_count(env, service, kind, orgs)
            sent0 = receiver.count
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await publish(kafka.bootstrap, w.records, args.rate)
            await wait_for(
                env, service, kind, orgs, expected(service, kind, w, before, deliveries(w, hooks)), proc
            )
            cpu, wall = cpu_seconds(proc.pid) - c0, time.monotonic() - t0
            events = w.job_events + (w.cost_events if service == "notification" else 0)
            return {
                "cpu_s": round(cpu, 3),
                "wall_s": round(wall, 3),
                "events": events,
                "cpu_ms_per_event": round(1000 * cpu / events, 3),
                "cpu_ms_per_event_less_idle": round(1000 * max(cpu - idle_rate * wall, 0) / events, 3),
                "idle_cpu_ms_per_s": round(1000 * idle_rate, 2),
                "webhook_requests": receiver.count - sent0,
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        kafka.stop()


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def deliveries(w: Workload, hooks: bool) -> int:
    """Organization webhook: every event of the workload; a job's own URL: its four job events
    (one URL: the same target as the organization's webhook, so one delivery per event)."""
    if not hooks:
        return 0
    return w.job_events + w.cost_events


async def run(args: argparse.Namespace) -> dict:
    state = Path(tempfile.mkdtemp(prefix="gpufleet-bench-consumers-"))
    pg = EmbeddedPostgres(state / "pg", durable=False)
    pg.start()
    receiver = Receiver()
    await receiver.start()
    dbs: dict[str, Database] = {}
    try:
        urls = {}
        for service in SERVICES:
            await migrate_service(pg.admin_url, service, password=pg.password_for(role_name(service)))
            urls[service] = pg.url_for(role_name(service))
            dbs[service] = Database(urls[service], service, pool_size=2)
        env = Env(pg, state, urls, dbs)
        results: dict[str, dict] = {}
        for service in args.services:
            base = await one_run(env, service, "baseline", args, receiver)
            svc = await one_run(env, service, "service", args, receiver)
            results[service] = {
                "baseline": base,
                "service": svc,
                "ratio": round(svc["cpu_ms_per_event"] / max(base["cpu_ms_per_event"], 1e-9), 2),
            }
            print(f"{service}: baseline {base}", flush=True)
            print(f"{service}: service  {svc}", flush=True)
        return {
            "bench": "consumers_cpu",
            "jobs": args.jobs,
            "rate": args.rate,
            "webhooks": args.webhooks,
            "results": {
                s: {
                    "service_cpu_ms_per_event": r["service"]["cpu_ms_per_event"],
                    "baseline_cpu_ms_per_event": r["baseline"]["cpu_ms_per_event"],
                    "ratio": r["ratio"],
                    "service_less_idle": r["service"]["cpu_ms_per_event_less_idle"],
                    "service_idle_cpu_ms_per_s": r["service"]["idle_cpu_ms_per_s"],
                }
                for s, r in results.items()
            },
        }
    finally:
        for db in dbs.values():
            await db.dispose()
        await receiver.stop()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300, help="job lifecycles per measured run")
    parser.add_argument("--warmup", type=int, default=20, help="lifecycles consumed before measuring")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second published (0: at once)")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured")
    parser.add_argument("--webhooks", action="store_true", help="notification: a webhook per organization")
    parser.add_argument("--services", nargs="+", default=list(SERVICES), choices=SERVICES)
    parser.add_argument("--noop-consumer", choices=SERVICES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_consumer:
        noop_consumer(args.noop_consumer)
        return
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
