"""One service runtime: every process (six services, the gateway, the agent) starts through it.

A service's ``__main__`` names its parts and calls :meth:`Runtime.run`::

    settings = load_settings(BillingSettings)
    rt = Runtime("billing", settings)
    db = rt.database(settings.billing_database_url, schema="billing", version=SCHEMA_VERSION)
    app = bootstrap(settings, db=db, auth=rt.authenticator())
    rt.outbox(publishes=(topics.COSTS,))
    rt.consumers(app.register_consumers, topics=(topics.JOBS,))
    rt.grpc(settings.billing_grpc_listen, app.grpc_services)
    rt.run()

What the runtime owns, so that no service writes it again:

* **Start-up that needs nothing to be up.** The database engine is created at once; connecting and the
  schema-version check happen in the background (a schema at the wrong version is fatal: the process
  exits naming the migration command; an unreachable database is not: it keeps trying). The broker's
  topics are ensured and the consumers connected in the background, with capped backoff. The gRPC server
  listens from the first second, so reads and outbox writes are served while the broker is down.
* **Truthful readiness** (:mod:`shared.readiness`): database, broker and outbox backlog age are watched;
  the gRPC health service says SERVING only while the core dependency (the database) is up and publishes
  one entry per dependency; the ops listener answers ``/readyz`` with the details, ``/livez`` and
  Prometheus text at ``/metrics``.
* **Supervision.** Background tasks that end with an error are fatal (the process exits non-zero and its
  supervisor restarts it); periodic tasks catch, log and back off instead, so one bad round never takes
  a service down.
* **Graceful drain on SIGTERM/SIGINT**: health NOT_SERVING first (load balancers stop sending), the gRPC
  server stops accepting and finishes in-flight calls, consumers stop and commit their offsets, tasks get
  the stop signal and ``drain_seconds`` to finish, the outbox relay publishes what was committed; then
  teardown in reverse order of creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from faststream.kafka import KafkaBroker
from grpc_health.v1 import health, health_pb2
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy import text
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential_jitter

from shared import metrics, readiness
from shared.consumers import prune_processed_events, refresh_consumer_lag
from shared.contracts import topics as topic_names
from shared.db import Database, SchemaVersionMismatch
from shared.grpc import Authenticator, serve
from shared.kafka import RetryingKafkaBroker, client_security, ensure_topics, make_broker
from shared.logging import configure_logging
from shared.ops import OpsServer
from shared.outbox import OutboxRelay, outbox_backlog
from shared.settings import BaseServiceSettings, IdentityClientSettings, KafkaSettings
from shared.telemetry import configure_tracing

log = logging.getLogger("gpufleet.runtime")

S = TypeVar("S", bound=BaseSettings)

GrpcRegistration = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]
TaskFn = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
RoundFn = Callable[[], Awaitable[Any]]

# How often dependencies are probed, and how old the oldest unpublished outbox row may be before the
# outbox counts as down (the relay normally publishes within milliseconds of a commit).
PROBE_SECONDS = 1.0
OUTBOX_STALE_SECONDS = 30.0
LAG_SECONDS = 15.0


class Fatal(Exception):
    """A background failure that must stop the process (its supervisor decides what happens next)."""


def load_settings(cls: type[S]) -> S:
    """Validate settings or exit with the names of the missing/invalid variables (never their values)."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"GPUFLEET_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"invalid configuration: {problems}")


def _backoff(cap: float = 5.0) -> AsyncRetrying:
    """Retry anything but cancellation and fatal exits, forever, with capped jittered backoff."""
    return AsyncRetrying(
        retry=retry_if_exception(lambda e: not isinstance(e, SystemExit | asyncio.CancelledError)),
        wait=wait_exponential_jitter(multiplier=0.2, max=cap, jitter=0.2),
        stop=stop_never,
        reraise=True,
    )


@dataclass
class _Periodic:
    name: str
    fn: RoundFn
    every: float
    initial_delay: float


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop of the configured kind: uvloop unless ``asyncio`` is asked for. ``uvloop``
    asked for explicitly and missing is an error; ``auto`` without it (a platform it has no wheel for)
    takes the standard loop, and the start-up log line names the loop either way."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Runtime:
    """The life cycle of one process. Declare its parts, then :meth:`run` (blocking) or :meth:`serve`."""

    def __init__(self, name: str, settings: BaseServiceSettings) -> None:
        self.name = name
        self.settings = settings
        # Parts are built before run() (gRPC channels bind to the event loop current when they are made),
        # so outside a running loop the runtime makes the loop it will run on, and makes it current now.
        try:
            asyncio.get_running_loop()
            self._loop: asyncio.AbstractEventLoop | None = None
        except RuntimeError:
            self._loop = new_event_loop(settings.event_loop)
            asyncio.set_event_loop(self._loop)
        self.readiness = readiness.Readiness((), core=())
        self.db: Database | None = None
        self._schema: tuple[str, int] | None = None
        self._auth: Authenticator | None = None
        self._publishes: tuple[str, ...] = ()
        self._relay: OutboxRelay | None = None
        self._consumers: list[Callable[[KafkaBroker], None]] = []
        self._consumed: tuple[str, ...] = ()
        self._broker: KafkaBroker | None = None
        self._groups: set[tuple[str, str]] = set()
        self._broker_returned = asyncio.Event()
        self._grpc: list[tuple[str, Sequence[GrpcRegistration]]] = []
        self._health: list[health.aio.HealthServicer] = []
        self._startup_warnings: list[tuple[str, dict[str, Any]]] = []
        self._tasks: list[tuple[str, TaskFn]] = []
        self._periodic: list[_Periodic] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.ops: OpsServer | None = None

    # ------------------------------------------------------------------ declaring parts

    def database(self, url: str, *, schema: str, version: int, pool_size: int = 10) -> Database:
        """The service's database (engine only; the runtime connects and checks the schema)."""
        self.db = Database(url, schema, pool_size=pool_size)
        self._schema = (schema, version)
        self._depend(readiness.DATABASE, core=True)
        return self.db

    def authenticator(self) -> Authenticator:
        if not isinstance(self.settings, IdentityClientSettings):
            raise TypeError(f"{type(self.settings).__name__} has no identity client settings")
        if self._auth is None:
            self._auth = Authenticator(
                self.settings.identity_grpc_target, ttl=self.settings.auth_cache_seconds
            )
        return self._auth

    def outbox(self, *, publishes: tuple[str, ...]) -> None:
        """Run the outbox relay of this service's database for these topics."""
        if self.db is None:
            raise RuntimeError("declare the database before the outbox")
        self._publishes = publishes
        self._relay = OutboxRelay(self.db, self._kafka_settings(), publishes=publishes)
        self._depend(readiness.BROKER)
        self._depend(readiness.OUTBOX)

    def consumers(self, register: Callable[[KafkaBroker], None], *, topics: Iterable[str]) -> None:
        """Subscribe through ``register(broker)``; ``topics`` are ensured before the broker connects."""
        self._consumers.append(register)
        self._consumed = (*self._consumed, *topics)
        self._depend(readiness.BROKER)

    def grpc(self, listen: str, services: Sequence[GrpcRegistration]) -> None:
        """A gRPC listener serving ``services``; each listener has its own health and reflection."""
        self._grpc.append((listen, services))

    def grpc_split(
        self,
        listen: str,
        services: Sequence[GrpcRegistration],
        *,
        agent_listen: str,
        agent_services: Sequence[GrpcRegistration],
        agent_setting: str,
    ) -> None:
        """Tenant- and operator-facing ``services`` on ``listen``, the node agents' ``agent_services``
        on ``agent_listen``: two listeners, so that a platform team can firewall its node network apart
        from the tenant-facing one. A call on the other listener answers UNIMPLEMENTED (the server has
        no such service). Without ``agent_listen`` one listener serves both, as before, and the start-up
        log says so once, naming ``agent_setting`` (the variable that would split them)."""
        if agent_listen:
            self.grpc(listen, services)
            self.grpc(agent_listen, agent_services)
            return
        self.grpc(listen, [*services, *agent_services])
        self._startup_warnings.append(
            (
                "node agents' RPCs share the tenant-facing gRPC listener",
                {
                    "listen": listen,
                    "agent_services": [name for _, _, name in agent_services],
                    "setting": agent_setting,
                },
            )
        )

    def task(self, name: str, fn: TaskFn) -> None:
        """A long-running loop ``fn(stop)``; its failure is fatal (the supervisor restarts the process)."""
        self._tasks.append((name, fn))

    def periodic(self, name: str, fn: RoundFn, *, every: float, initial_delay: float = 0.0) -> None:
        """``fn()`` is one round, run every ``every`` seconds; a failing round is logged, not fatal."""
        self._periodic.append(_Periodic(name, fn, every, initial_delay))

    def on_close(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self._closers.append(fn)

    def depend(self, dependency: str, *, core: bool = False) -> None:
        """Track a dependency of the service's own (it reports with ``rt.readiness.set``)."""
        self._depend(dependency, core=core)

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Run until SIGINT/SIGTERM, then drain; exits non-zero when a task fails (:class:`Fatal`)."""
        configure_logging(self.name, self.settings.log_level, self.settings.log_format)
        configure_tracing(self.name, self.settings.otel_exporter)
        loop = self._loop
        try:
            with asyncio.Runner(loop_factory=(lambda: loop) if loop else None) as runner:
                runner.run(self._main())
        except KeyboardInterrupt:
            pass
        except Fatal as exc:
            sys.exit(str(exc))

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("starting", extra={"service": self.name, "event_loop": type(loop).__module__.split(".")[0]})
        await self.serve(stop)
        log.info("stopped", extra={"service": self.name})

    async def serve(self, stop: asyncio.Event) -> None:
        """Start every part, wait for ``stop`` or a fatal task failure, then drain and tear down.

        Raises :class:`Fatal` when a task failed or the schema is not the one this build expects."""
        metrics.process_info(self.name)
        self.readiness.on_change(self._on_dependency_change)
        started = time.monotonic()
        task_stop = asyncio.Event()  # tasks are told to stop only after intake has stopped
        async with contextlib.AsyncExitStack() as teardown:
            teardown.push_async_callback(self._close_all)
            if self.settings.ops_listen:
                self.ops = OpsServer(self.settings.ops_listen, self.readiness)
                await self.ops.start()
                teardown.push_async_callback(self.ops.stop)
            background: list[asyncio.Task[Any]] = []
            teardown.push_async_callback(_cancel_all, background)
            if self.db is not None:
                background.append(asyncio.create_task(self._watch_database(), name="watch-database"))
            if self._relay is not None:
                relay_stop = asyncio.Event()
                relay = asyncio.create_task(self._relay.run(relay_stop), name="outbox-relay")
                # Registered first among the stops, so it runs last: it publishes what drained work committed.
                teardown.push_async_callback(_stop_task, relay, relay_stop, self.settings.drain_seconds)
                background.append(asyncio.create_task(self._watch_outbox(), name="watch-outbox"))
            if readiness.BROKER in self.readiness.states:
                background.append(asyncio.create_task(self._watch_broker(), name="watch-broker"))
            fatal: list[asyncio.Task[Any]] = []
            watchers = [t for t in background if t.get_name() == "watch-database"]
            for name, fn in self._tasks:
                task = asyncio.create_task(fn(task_stop), name=name)
                fatal.append(task)
            teardown.push_async_callback(_stop_tasks, fatal, task_stop, self.settings.drain_seconds)
            if self._consumers:
                background.append(asyncio.create_task(self._run_consumers(), name="consumers"))
                teardown.push_async_callback(self._stop_consumers)
                self.periodic("consumer-lag", self._measure_lag, every=LAG_SECONDS, initial_delay=LAG_SECONDS)
                if self.db is not None:
                    # The ledger of applied event ids outlives the outbox replay window (shared.consumers).
                    db = self.db
                    self.periodic(
                        "processed-events-retention", lambda: prune_processed_events(db), every=3600.0
                    )
            for p in self._periodic:
                background.append(asyncio.create_task(self._run_periodic(p, stop), name=p.name))
            for listen, services in self._grpc:
                server, health_servicer = await serve(
                    listen,
                    [(add, servicer) for add, servicer, _ in services],
                    [name for _, _, name in services],
                    serving=self.readiness.serving,
                    dependencies=list(self.readiness.states),
                )
                self._health.append(health_servicer)
                teardown.push_async_callback(server.stop, self.settings.drain_seconds)
                teardown.push_async_callback(health_servicer.enter_graceful_shutdown)
            await self._publish_health()
            for message, extra in self._startup_warnings:
                log.warning(message, extra=extra)
            log.info(
                "serving",
                extra={
                    "service": self.name,
                    "startup_s": round(time.monotonic() - started, 3),
                    "ops": self.ops.url if self.ops else None,
                },
            )
            await _wait(stop, [*fatal, *watchers])

    # ------------------------------------------------------------------ dependencies

    def _depend(self, dependency: str, *, core: bool = False) -> None:
        self.readiness.states.setdefault(dependency, readiness.DependencyState())
        if core:
            self.readiness.core = self.readiness.core | {dependency}

    def _kafka_settings(self) -> KafkaSettings:
        if not isinstance(self.settings, KafkaSettings):
            raise TypeError(f"{type(self.settings).__name__} has no Kafka settings")
        return self.settings

    def _on_dependency_change(self, dependency: str, state: readiness.DependencyState) -> None:
        metrics.DEPENDENCY_UP.labels(dependency=dependency).set(1 if state.up else 0)
        (log.info if state.up else log.warning)(
            f"{dependency} {'up' if state.up else 'down'}",
            extra={"dependency": dependency, "detail": state.detail},
        )
        asyncio.get_running_loop().create_task(self._publish_health())

    async def _publish_health(self) -> None:
        status = health_pb2.HealthCheckResponse
        overall = status.SERVING if self.readiness.serving else status.NOT_SERVING
        for servicer in self._health:
            for name, state in self.readiness.states.items():
                await servicer.set(
                    readiness.health_name(name), status.SERVING if state.up else status.NOT_SERVING
                )
            for name in servicer_names(servicer):
                await servicer.set(name, overall)

    async def _watch_database(self) -> None:
        assert self.db is not None and self._schema is not None
        schema, version = self._schema
        db = self.db
        checked = False
        while True:
            try:
                if not checked:
                    await db.check_schema(schema, version)
                    await db.check_role()  # never as a role that could bypass row-level security
                    checked = True
                else:
                    async with db.engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                self.readiness.set(readiness.DATABASE, True, "connected")
            except SchemaVersionMismatch as exc:
                if exc.reachable:
                    # Not an outage: this build and the schema disagree. A SystemExit must not be raised
                    # inside a task (asyncio would bypass the teardown), so it travels as Fatal.
                    raise Fatal(str(exc)) from None
                self.readiness.set(readiness.DATABASE, False, _short(exc.__cause__ or exc))
            except Exception as exc:
                self.readiness.set(readiness.DATABASE, False, _short(exc))
            await asyncio.sleep(PROBE_SECONDS)

    async def _watch_broker(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        kafka = self._kafka_settings()
        while True:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=kafka.kafka_bootstrap_servers,
                client_id=f"gpufleet-{self.name}-probe",
                request_timeout_ms=3000,
                **client_security(kafka),
            )
            try:
                await asyncio.wait_for(admin.start(), 5)
                seen: set[int] | None = None
                while True:
                    await asyncio.wait_for(admin.list_topics(), 5)
                    # A broker that restarted between two probes shows as new connections.
                    conns = {id(c) for c in getattr(getattr(admin, "_client", None), "_conns", {}).values()}
                    if seen is not None and conns - seen:
                        self._broker_bounced("the broker connection was re-established")
                    seen = conns
                    state = self.readiness.states[readiness.BROKER]
                    if not state.up and state.detail != "not checked yet":
                        self._broker_bounced("the broker answers again")
                    self.readiness.set(readiness.BROKER, True, "connected")
                    await asyncio.sleep(PROBE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.readiness.states[readiness.BROKER].up:
                    self._pause_consumers()
                self.readiness.set(readiness.BROKER, False, _short(exc))
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
            await asyncio.sleep(PROBE_SECONDS)

    def _pause_consumers(self) -> None:
        """The broker stopped answering: consumers stop fetching until they are reconnected, when it
        answers again. Paused, not disconnected: a stop would try to commit to a broker that is gone, and
        a stop cut short leaves the client's tasks running."""
        if isinstance(self._broker, RetryingKafkaBroker) and (paused := self._broker.pause_consumers()):
            log.info("consumers paused while the broker does not answer", extra={"partitions": paused})

    def _broker_bounced(self, why: str) -> None:
        """The broker may have come back empty: consumers that were connected reconnect."""
        if self._broker is not None:
            log.info("broker bounced", extra={"why": why})
            self._broker_returned.set()

    async def _watch_outbox(self) -> None:
        """Up while the relay keeps up: nothing waits, the oldest row is young, or the relay is making
        progress (a replay after broker data loss publishes rows days old, and that is health)."""
        assert self.db is not None and self._relay is not None
        last_total, last_progress = self._relay.published_total, time.monotonic()
        replays = self._relay.replays
        while True:
            if self._relay.replays != replays:  # the relay found the broker without our events
                replays = self._relay.replays
                self._broker_bounced("the outbox relay found the broker lost its data")
            try:
                count, age = await outbox_backlog(self.db)
                if self._relay.published_total != last_total:
                    last_total, last_progress = self._relay.published_total, time.monotonic()
                progressing = time.monotonic() - last_progress < OUTBOX_STALE_SECONDS
                fresh = not count or (age or 0.0) < OUTBOX_STALE_SECONDS or progressing
                detail = "empty" if not count else f"{count} unpublished, oldest {age or 0.0:.1f}s"
                self.readiness.set(
                    readiness.OUTBOX, fresh, detail, backlog=count, oldest_age_s=round(age or 0.0, 3)
                )
            except Exception as exc:
                self.readiness.set(readiness.OUTBOX, False, f"backlog unknown: {_short(exc)}")
            await asyncio.sleep(PROBE_SECONDS)

    # ------------------------------------------------------------------ consumers and rounds

    async def _run_consumers(self) -> None:
        """Ensure the consumed topics and connect the consumers, retried until the broker answers; and
        reconnect them whenever the broker comes back after an outage.

        Why reconnect: a broker that restarted may have lost its data (the embedded one always does; a
        Kafka cluster restored from nothing does too). Consumers that kept their in-memory positions would
        then skip the start of the replayed log. A fresh group member asks for the committed offsets
        instead: kept by a durable broker (so nothing is re-read), gone from an empty one (so the log is
        read from the start, which the idempotent sinks make harmless)."""
        kafka = self._kafka_settings()
        while True:
            async for attempt in _backoff():
                with attempt:
                    await self._connect_consumers(kafka)
            log.info("consumers connected", extra={"topics": list(self._consumed)})
            await self._broker_returned.wait()
            self._broker_returned.clear()
            log.warning("the broker came back after an outage; reconnecting the consumers")
            await self._stop_consumers()
            self._broker = None

    async def _connect_consumers(self, kafka: KafkaSettings) -> None:
        if self._consumed:
            # Their dead-letter topics too: nothing is created by naming it (shared.kafka).
            await ensure_topics(kafka, (*self._consumed, *map(topic_names.dead_letter, self._consumed)))
        broker = make_broker(kafka, self.name)
        for register in self._consumers:
            register(broker)
        self._groups = {
            (group, t)
            for s in broker.subscribers
            if (group := getattr(s, "group_id", None))
            for t in getattr(s, "topic_names", ())
        }
        try:
            await broker.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await broker.stop()
            raise
        self._broker = broker

    async def _measure_lag(self) -> None:
        if self._broker is None or not self.readiness.states[readiness.BROKER].up:
            return
        kafka = self._kafka_settings()
        by_group: dict[str, list[str]] = {}
        for group, topic in self._groups:
            by_group.setdefault(group, []).append(topic)
        for group, group_topics in by_group.items():
            await refresh_consumer_lag(kafka, group, group_topics)

    async def _stop_consumers(self) -> None:
        if self._broker is None:
            return
        try:  # in-flight handlers finish and offsets are committed, unless the broker is gone
            await asyncio.wait_for(self._broker.stop(), self.settings.drain_seconds or None)
        except (TimeoutError, Exception) as exc:
            log.warning("consumers did not stop cleanly", extra={"error": _short(exc)})

    async def _run_periodic(self, p: _Periodic, stop: asyncio.Event) -> None:
        await _sleep_unless(stop, p.initial_delay)
        failures = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                await p.fn()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                metrics.PERIODIC_FAILURES.labels(task=p.name).inc()
                log.exception("periodic task failed", extra={"task": p.name, "failures": failures})
            metrics.PERIODIC_SECONDS.labels(task=p.name).observe(time.monotonic() - began)
            # Back off after failures (a database outage), never beyond ten intervals.
            await _sleep_unless(stop, p.every * min(2**failures, 10) if failures else p.every)

    async def _close_all(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        if self._auth is not None:
            await self._auth.close()
        if self.db is not None:
            await self.db.dispose()


def servicer_names(servicer: health.aio.HealthServicer) -> list[str]:
    """The service names a health servicer was started with (the overall entry and each API)."""
    return list(getattr(servicer, "gpufleet_services", [""]))


def _short(exc: BaseException) -> str:
    text_ = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text_}"[:300]


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait(stop: asyncio.Event, fatal: list[asyncio.Task[Any]]) -> None:
    """Until ``stop`` or a task of ``fatal`` ends; a task ending with an error exits non-zero."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *fatal], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is waiter or task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            log.error("task failed", extra={"task": task.get_name()}, exc_info=exc)
            stop.set()
            detail = str(exc) if isinstance(exc, Fatal) else repr(exc)
            raise Fatal(f"fatal: {task.get_name()}: {detail}")
        if not stop.is_set():
            log.error("task ended on its own", extra={"task": task.get_name()})
            raise Fatal(f"fatal: task {task.get_name()} ended")


async def _stop_tasks(tasks: list[asyncio.Task[Any]], stop: asyncio.Event, grace: float) -> None:
    stop.set()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace or None)
        await _cancel_all(list(pending))


async def _stop_task(task: asyncio.Task[Any], stop: asyncio.Event, grace: float) -> None:
    await _stop_tasks([task], stop, grace)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- helpers for tasks


async def supervise(stop: asyncio.Event, *tasks: asyncio.Task) -> None:
    """Inside a task of the runtime: wait for ``stop`` or for any of ``tasks`` to die, which is
    :class:`Fatal` (the process exits non-zero)."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not waiter and not t.cancelled() and t.exception()]
    for t in tasks:
        t.cancel()
    waiter.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        exc = failed[0].exception()
        log.error("background task failed", exc_info=exc)
        raise Fatal(f"{failed[0].get_name()}: {exc!r}")
