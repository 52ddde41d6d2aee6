"""The embedded default: the whole system on one machine, no Docker.

``python -m shared.devstack up`` (what ``make dev`` runs) starts PostgreSQL 18 and the tansu
Kafka-protocol broker, migrates every schema, starts every service and the gateway as its own OS
process plus one node agent with *simulated* GPUs, bootstraps a first organization with an owner and an
API key, and prints how to use it. Ctrl-C stops everything. State (database, secrets, logs, the first
key) lives under ``.state/`` (mode 0700, or 0711 when run as root so that PostgreSQL's unprivileged
user can reach its data folder; the secret files 0600) and survives restarts; ``--reset`` starts from
nothing. PostgreSQL asks every connection for a password (:mod:`shared.embedded.postgres`
keeps them in ``.state/postgres/passwords.json``): migrations run as the superuser, and each service
connects as its own DML-only role with its own password (:mod:`shared.migrate`).

Once up, everything is supervised (:mod:`shared.embedded.supervisor`): a service, the agent,
PostgreSQL (on its data folder) or the broker (on its port, empty: the outboxes replay into it) that
dies is restarted with capped exponential backoff, and the console says what died and what is down.
One part failing over and over never stops the rest. ``.state/endpoints.json`` lists every address,
and each process's ``/metrics`` and ``/readyz`` URL (its ops listener, ``GPUFLEET_OPS_LISTEN``).

Each process gets only the settings its own settings class declares (:meth:`Stack.env_for`), so no
process holds another's database URL or a secret it does not use. Agents hold no shared secret: each
gets a one-time join token of its own (created through fleet's operator API once the services are up,
only while it has no node credential in its state folder) and keeps the credential it is exchanged for.

The same :class:`Stack` is used by the end-to-end tests with the harness's own PostgreSQL and broker.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import grpc
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc, identity_pb2, identity_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings

from shared.embedded.postgres import EmbeddedPostgres, free_port, read_tail
from shared.embedded.supervisor import RestartPolicy, Supervisor
from shared.migrate import role_name
from shared.settings import ENV_PREFIX

GRPC_SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
# The services whose node-facing API (fleet's NodeRegistryService, the scheduler's NodeAgentService) is
# served on a listener of its own: the devstack always splits them, and points agents only there.
AGENT_LISTENERS = ("fleet", "scheduler")
# Below Linux's ephemeral range (32768-60999): a default there can be taken as the local port of some
# outgoing connection between the free-port check and the bind (seen: "failed to bind 127.0.0.1:50056").
DEFAULT_PORTS = {
    "identity": 15051,
    "fleet": 15052,
    "scheduler": 15053,
    "billing": 15054,
    "monitoring": 15055,
    "notification": 15056,
    # The agent listeners (node agents only; tenant-facing calls there answer UNIMPLEMENTED).
    "fleet-agent": 15062,
    "scheduler-agent": 15063,
    "gateway": 8080,
    "postgres": 15432,
    "kafka": 19092,
}


def agent_port_name(process: str) -> str:
    """The ``ports`` key of a process's agent listener: ``fleet-agent``, ``scheduler-2-agent``, ..."""
    return f"{process}-agent"


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def choose_ops_ports(saved: dict[str, int] | None, taken: set[int]) -> dict[str, int]:
    """One operations-listener port per process: the saved one if still free, else any free port."""
    out: dict[str, int] = {}
    for name in PROCESSES:
        candidate = (saved or {}).get(name)
        while not candidate or candidate in taken or candidate in out.values() or not _port_free(candidate):
            candidate = free_port()
        out[name] = candidate
    return out


def choose_ports(saved: dict[str, int] | None = None) -> dict[str, int]:
    """Saved ports if still free, else the defaults if free, else any free port."""
    out: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        for candidate in ((saved or {}).get(name), default):
            if candidate and candidate not in out.values() and _port_free(candidate):
                out[name] = candidate
                break
        else:
            out[name] = free_port()
    return out


# Each process's settings class: the fields it declares are the only GPUFLEET_* variables it gets.
SETTINGS_CLASSES = {
    "identity": "services.identity.config:IdentitySettings",
    "fleet": "services.fleet.config:FleetSettings",
    "scheduler": "services.scheduler.config:SchedulerSettings",
    "billing": "services.billing.config:BillingSettings",
    "monitoring": "services.monitoring.config:MonitoringSettings",
    "notification": "services.notification.config:NotificationSettings",
    "gateway": "services.gateway.config:GatewaySettings",
    "agent": "services.agent.config:AgentSettings",
}
PROCESSES = tuple(SETTINGS_CLASSES)


def settings_class(process: str) -> type[BaseSettings]:
    module, _, name = SETTINGS_CLASSES[process].partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, BaseSettings)
    return cls


def settings_variables(process: str) -> frozenset[str]:
    """The environment variables ``process``'s settings class reads (``GPUFLEET_`` + field name)."""
    cls = settings_class(process)
    prefix = str(cls.model_config.get("env_prefix") or ENV_PREFIX)
    return frozenset(f"{prefix}{name}".upper() for name in cls.model_fields)


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.alive():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """Crash it (SIGKILL): used by tests that check nothing is lost."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        return read_tail(self.log_path, lines)


@dataclass
class Stack:
    """Every service as its own process, wired to one PostgreSQL and one broker.

    Each process gets only the settings its own settings class declares (:meth:`env_for`): the operator
    token reaches identity alone (fleet and the gateway forward what a caller presents), each agent
    only its own join token (:meth:`join_token`), a database URL only its own service, with that role's password from ``db_passwords`` (service name -> password;
    :meth:`shared.embedded.postgres.EmbeddedPostgres.password_for`). ``ops_ports`` (one operations listener per process: ``/metrics``, ``/livez``,
    ``/readyz``) are allocated on first use unless given, and kept for the Stack's life, so a restarted
    process serves its metrics where it did before.

    Fleet and every scheduler replica serve their node agents' API on a second listener
    (``fleet-agent``, ``scheduler-agent``, ``scheduler-2-agent``, ... in ``ports``; taken from
    ``ports`` when given, else free), and only there: agents are pointed at those alone, the gateway
    and the CLI at the tenant-facing ones, and the scheduler verifies node credentials on fleet's.

    ``scheduler_replicas`` > 1 starts hot standbys (``scheduler-2``, ...), each on ports of its own
    (taken from ``ports`` when given, else free): only the lease holder schedules, every replica
    serves gRPC. The gateway and the agents then dial all replicas as one target
    (``ipv4:host:p1,host:p2``, gRPC's default pick_first: the first replica that answers, the next
    one once it is gone), so whichever replica leads can be killed. ``agents`` > 1 starts more node
    agents (``agent-2``, ...), each with its own host name (``devstack-node-N``), state folder and
    ``agent_gpus`` simulated GPUs, and, since they share one machine, its own job folder, cgroup
    parent and job uid range. ``database`` names the PostgreSQL database every service uses.
    """

    state_dir: Path
    pg_port: int
    kafka_bootstrap: str
    ports: dict[str, int]
    admin_token: str
    agent_gpus: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    db_passwords: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)
    scheduler_replicas: int = 1
    agents: int = 1
    database: str = "gpufleet"

    def __post_init__(self) -> None:
        known = set().union(*(settings_variables(p) for p in PROCESSES))
        unread = sorted(k for k in self.extra_env if k.startswith(ENV_PREFIX) and k not in known)
        if unread:  # a typo would otherwise be dropped silently by the per-process filter
            raise ValueError(f"no process reads {unread}")
        if self.scheduler_replicas < 1 or self.agents < 1:
            raise ValueError("a stack needs at least one scheduler and one agent")
        self.ports = dict(self.ports)
        for name in (*self.scheduler_names[1:], *map(agent_port_name, self.agent_listener_names)):
            if name not in self.ports:
                port = free_port()
                while port in {*self.ports.values(), *self.ops_ports.values()}:
                    port = free_port()
                self.ports[name] = port

    @property
    def scheduler_names(self) -> tuple[str, ...]:
        """``scheduler`` (the first replica), then ``scheduler-2``, ... (the standbys)."""
        return ("scheduler", *(f"scheduler-{i}" for i in range(2, self.scheduler_replicas + 1)))

    @property
    def agent_listener_names(self) -> tuple[str, ...]:
        """The processes with an agent listener: fleet and every scheduler replica."""
        return tuple(n for svc in AGENT_LISTENERS for n in self._replicas_of(svc))

    def _replicas_of(self, service: str) -> tuple[str, ...]:
        return self.scheduler_names if service == "scheduler" else (service,)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return ("agent", *(f"agent-{i}" for i in range(2, self.agents + 1)))

    @property
    def scheduler_target(self) -> str:
        """What the scheduler's tenant-facing clients dial: the one replica, or every replica as one target."""
        return self._one_target(self.target(name) for name in self._replicas_of("scheduler"))

    def agent_target(self, service: str) -> str:
        """What node agents dial for ``service`` (fleet or the scheduler): its agent listener, for the
        scheduler every replica's as one target."""
        return self._one_target(self.target(agent_port_name(n)) for n in self._replicas_of(service))

    @staticmethod
    def _one_target(targets: Iterable[str]) -> str:
        listed = list(targets)
        return listed[0] if len(listed) == 1 else "ipv4:" + ",".join(listed)

    def agent_hostname(self, name: str) -> str:
        """``agent`` -> devstack-node-1, ``agent-2`` -> devstack-node-2, ..."""
        return f"devstack-node-{self.agent_names.index(name) + 1}"

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def ops_port(self, process: str) -> int:
        if process not in self.ops_ports:
            taken = {*self.ports.values(), *self.ops_ports.values()}
            port = free_port()
            while port in taken:
                port = free_port()
            self.ops_ports[process] = port
        return self.ops_ports[process]

    def metrics_url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ops_port(process)}/metrics"

    def readiness_url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ops_port(process)}/readyz"

    def liveness_url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ops_port(process)}/livez"

    def database_url(self, service: str) -> str:
        """The URL ``service`` connects with: its own role, its own password (if the stack has one)."""
        password = self.db_passwords.get(service)
        credentials = f"{role_name(service)}:{quote(password, safe='')}" if password else role_name(service)
        return f"postgresql://{credentials}@127.0.0.1:{self.pg_port}/{self.database}"

    def _settings(self, process: str) -> dict[str, str]:
        """Every GPUFLEET_* value this stack knows, as ``process`` is to see it (an agent's fleet and
        scheduler targets are their agent listeners); :meth:`env_for` hands it its share."""
        values = {
            "GPUFLEET_LOG_FORMAT": "json",
            "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER": "false",  # tansu has no InitProducerId
            "GPUFLEET_KAFKA_TOPIC_PARTITIONS": "3",
            "GPUFLEET_ADMIN_TOKEN": self.admin_token,
            "GPUFLEET_NOTIFICATION_ALLOW_PRIVATE_TARGETS": "true",  # local receivers are the point here
            "GPUFLEET_GATEWAY_HOST": "127.0.0.1",
            "GPUFLEET_GATEWAY_PORT": str(self.ports["gateway"]),
            "GPUFLEET_AGENT_GPU_BACKEND": "simulated",
            "GPUFLEET_AGENT_SIM_GPU_COUNT": str(self.agent_gpus),
            "GPUFLEET_AGENT_HOSTNAME": "devstack-node-1",
            "GPUFLEET_AGENT_STATE_DIR": str(self.state_dir / "agent"),
        }
        for svc in GRPC_SERVICES:
            up = svc.upper()
            values[f"GPUFLEET_{up}_GRPC_LISTEN"] = self.target(svc)
            values[f"GPUFLEET_{up}_GRPC_TARGET"] = self.target(svc)
            values[f"GPUFLEET_{up}_DATABASE_URL"] = self.database_url(svc)
        values["GPUFLEET_SCHEDULER_GRPC_TARGET"] = self.scheduler_target
        for svc in AGENT_LISTENERS:
            values[f"GPUFLEET_{svc.upper()}_AGENT_GRPC_LISTEN"] = self.target(agent_port_name(svc))
        values["GPUFLEET_FLEET_AGENT_GRPC_TARGET"] = self.agent_target("fleet")  # the scheduler's
        if process == "agent":
            for svc in AGENT_LISTENERS:
                values[f"GPUFLEET_{svc.upper()}_GRPC_TARGET"] = self.agent_target(svc)
        values.update(self.extra_env)
        return values

    def env_for(self, process: str) -> dict[str, str]:
        """The parent's environment without any GPUFLEET_* variable, plus what ``process`` reads."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update({k: v for k, v in self.extra_env.items() if not k.startswith(ENV_PREFIX)})
        env["PYTHONUNBUFFERED"] = "1"
        reads = settings_variables(process)
        env.update({k: v for k, v in self._settings(process).items() if k in reads})
        env["GPUFLEET_OPS_LISTEN"] = f"127.0.0.1:{self.ops_port(process)}"
        return env

    def endpoints(self) -> dict[str, object]:
        """Where everything answers (no credentials): what ``.state/endpoints.json`` holds."""
        return {
            "gateway": self.gateway_url,
            "openapi": f"{self.gateway_url}/v1/openapi.json",
            "grpc": {svc: self.target(svc) for svc in GRPC_SERVICES},
            # Node agents' listeners (NodeRegistryService, NodeAgentService): agents only.
            "agent_grpc": {svc: self.target(agent_port_name(svc)) for svc in AGENT_LISTENERS},
            "kafka_bootstrap": self.kafka_bootstrap,
            "postgres": f"127.0.0.1:{self.pg_port}",
            "processes": {
                name: {
                    "metrics": self.metrics_url(name),
                    "readiness": self.readiness_url(name),
                    "liveness": self.liveness_url(name),
                    "log": str(self.state_dir / "logs" / f"{name}.log"),
                }
                for name in PROCESSES
            },
        }

    def write_endpoints(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.endpoints(), indent=2) + "\n")
        tmp.chmod(0o644)  # readable by any local tool: it holds addresses, never a secret
        tmp.replace(path)

    def _process(self, name: str) -> ServiceProcess:
        return ServiceProcess(
            name, f"services.{name}", self.env_for(name), self.state_dir / "logs" / f"{name}.log"
        )

    def _replica(self, name: str) -> ServiceProcess:
        """A standby scheduler: the scheduler's settings on a port and an ops listener of its own."""
        env = self.env_for("scheduler")
        env["GPUFLEET_SCHEDULER_GRPC_LISTEN"] = self.target(name)
        env["GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN"] = self.target(agent_port_name(name))
        env["GPUFLEET_OPS_LISTEN"] = f"127.0.0.1:{self.ops_port(name)}"
        return ServiceProcess(name, "services.scheduler", env, self.state_dir / "logs" / f"{name}.log")

    def agent_state_dir(self, name: str) -> Path:
        return self.state_dir / name

    def has_credential(self, name: str) -> bool:
        """Whether agent ``name`` already holds its node credential (then it needs no join token)."""
        return (self.agent_state_dir(name) / "node_credential.json").exists()

    async def join_token(
        self, name: str = "", *, organization_id: str = "", provider: str = "", is_spot: bool = False
    ) -> str:
        """A fresh one-time join token (fleet's NodeAdminService, as the operator): the shared pool,
        on-prem, not spot, unless told otherwise."""
        request = fleet_pb2.CreateJoinTokenRequest(
            description=name or "devstack",
            organization_id=organization_id,
            provider=provider,
            is_spot=is_spot,
        )
        async with grpc.aio.insecure_channel(self.target("fleet")) as ch:
            answer = await fleet_pb2_grpc.NodeAdminServiceStub(ch).CreateJoinToken(
                request,
                metadata=(("authorization", f"Bearer {self.admin_token}"),),
                timeout=10,
            )
        return answer.token

    def _agent(self, name: str, join_token: str | None = None) -> ServiceProcess:
        """The first agent as ever; each further one as another node on the same machine. Its join
        token (when it has no credential yet) is in its environment alone."""
        proc = self._agent_process(name)
        if join_token:
            proc.env["GPUFLEET_AGENT_JOIN_TOKEN"] = join_token
        return proc

    def _agent_process(self, name: str) -> ServiceProcess:
        if name == "agent":
            return self._process("agent")
        env = self.env_for("agent")
        hostname = self.agent_hostname(name)
        n = self.agent_names.index(name) + 1
        env["GPUFLEET_AGENT_HOSTNAME"] = hostname
        env["GPUFLEET_AGENT_STATE_DIR"] = str(self.state_dir / name)
        env["GPUFLEET_OPS_LISTEN"] = f"127.0.0.1:{self.ops_port(name)}"
        # Members of one gang on two agents of this machine share a job id: each agent needs its own
        # job folder and cgroup parent (both named by job id), and a uid range no other agent takes.
        env["GPUFLEET_AGENT_JOBS_DIR"] = str(
            Path(tempfile.gettempdir()) / f"gpufleet-jobs-{os.getuid()}-{hostname}"
        )
        env["GPUFLEET_AGENT_CGROUP_PARENT"] = f"gpufleet-{hostname}"
        first = 300_000 + (n - 2) * 10_000
        env["GPUFLEET_AGENT_JOB_UID_FIRST"] = str(first)
        env["GPUFLEET_AGENT_JOB_UID_LAST"] = str(first + 9_999)
        return ServiceProcess(name, "services.agent", env, self.state_dir / "logs" / f"{name}.log")

    async def start(self, timeout: float = 90.0) -> None:
        for name in (*GRPC_SERVICES, "gateway"):
            self.processes[name] = self._process(name)
            self.processes[name].start()
        await self.wait_ready(timeout)
        # Standbys after the first replica is up (so it, most likely, leads), beside the agents.
        standbys = self.scheduler_names[1:]
        for name in standbys:
            self.processes[name] = self._replica(name)
            self.processes[name].start()
        for name in self.agent_names:
            token = None if self.has_credential(name) else await self.join_token(name)
            self.processes[name] = self._agent(name, token)
            self.processes[name].start()
        if standbys:
            await self.wait_ready(timeout, standbys)

    async def wait_ready(
        self, timeout: float = 90.0, names: tuple[str, ...] | None = None, *, supervised: bool = False
    ) -> None:
        """Until every named service (default: all but the agent) answers SERVING / the gateway 200.

        At start-up a process that exits is an error (``supervised=False``); under a supervisor an exit
        is only a delay, since it will be restarted."""
        deadline = time.monotonic() + timeout
        pending = set(names or (*GRPC_SERVICES, "gateway"))
        while pending:
            for name in list(pending):
                proc = self.processes[name]
                if not proc.alive():
                    if supervised:
                        continue
                    raise RuntimeError(f"{name} exited during start-up:\n{proc.log_tail()}")
                if await (self._gateway_ready() if name == "gateway" else self._grpc_ready(name)):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.processes[n].log_tail(10)}" for n in pending)
                raise RuntimeError(f"not ready after {timeout:.0f}s: {sorted(pending)}\n{tails}")
            if pending:
                await asyncio.sleep(0.2)

    async def _grpc_ready(self, name: str) -> bool:
        """SERVING on each of the process's listeners (its agent listener too, when it has one)."""
        listeners = [name, *([agent_port_name(name)] if agent_port_name(name) in self.ports else [])]
        for listener in listeners:
            async with grpc.aio.insecure_channel(self.target(listener)) as ch:
                try:
                    reply = await health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=1
                    )
                except grpc.aio.AioRpcError:
                    return False
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    return False
        return True

    async def _gateway_ready(self) -> bool:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{self.gateway_url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def create_organization(
        self, name: str, email: str, owner_name: str = ""
    ) -> identity_pb2.CreateOrganizationResponse:
        async with grpc.aio.insecure_channel(self.target("identity")) as ch:
            return await identity_pb2_grpc.IdentityServiceStub(ch).CreateOrganization(
                identity_pb2.CreateOrganizationRequest(name=name, owner_email=email, owner_name=owner_name),
                metadata=(("authorization", f"Bearer {self.admin_token}"),),
                timeout=10,
            )

    def supervise(self, supervisor: Supervisor) -> Supervisor:
        """Register every started process with ``supervisor`` (the agent included)."""
        for name, proc in self.processes.items():
            supervisor.add(name, proc)
        return supervisor

    def restart(self, name: str) -> None:
        proc = self.processes[name]
        proc.stop()
        proc.start()

    def stop(self) -> None:
        for name in (
            *self.agent_names,
            "gateway",
            *reversed(self.scheduler_names[1:]),
            *reversed(GRPC_SERVICES),
        ):
            if name in self.processes:
                self.processes[name].stop()


def service_db_passwords(pg: EmbeddedPostgres) -> dict[str, str]:
    """Each service's runtime-role password on the embedded server (generated once, then stable): what
    ``migrate(passwords=...)`` sets on the roles and ``Stack(db_passwords=...)`` puts in the URLs."""
    return {svc: pg.password_for(role_name(svc)) for svc in GRPC_SERVICES}


# ----------------------------------------------------------------------------- make dev


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)


async def _up(state: Path, agent_gpus: int) -> None:
    from shared.embedded.kafka import EmbeddedKafka
    from shared.migrate import migrate

    t0 = time.monotonic()
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)  # also a state folder made before this was the rule
    config = _load_json(state / "config.json")
    ports = choose_ports(config.get("ports"))
    ops_ports = choose_ops_ports(config.get("ops_ports"), set(ports.values()))
    config.setdefault("admin_token", secrets.token_urlsafe(32))
    config.pop("agent_token", None)  # the shared agent token is gone (agents join with their own)
    config["ports"], config["ops_ports"] = ports, ops_ports
    _save_json(state / "config.json", config)

    pg = EmbeddedPostgres(state / "postgres", port=ports["postgres"])
    kafka = EmbeddedKafka(port=ports["kafka"], log_path=state / "logs" / "tansu.log")
    (state / "logs").mkdir(exist_ok=True)
    stack: Stack | None = None
    try:
        print(
            f"- PostgreSQL 18 (embedded) on 127.0.0.1:{ports['postgres']}, data in {state / 'postgres'}",
            flush=True,
        )
        pg.start()
        print(f"- Kafka-protocol broker (tansu, in-memory) on 127.0.0.1:{ports['kafka']}", flush=True)
        kafka.start()
        # Stable across restarts (kept in the state folder); set on each role by every run, which is
        # also what gives a state folder from before passwords its role passwords.
        db_passwords = service_db_passwords(pg)
        await migrate(pg.admin_url, passwords=db_passwords)
        print("- schemas migrated; starting services", flush=True)
        stack = Stack(
            state,
            ports["postgres"],
            kafka.bootstrap,
            ports,
            config["admin_token"],
            agent_gpus=agent_gpus,
            ops_ports=ops_ports,
            db_passwords=db_passwords,
        )
        stack.write_endpoints(state / "endpoints.json")
        await stack.start()
        boot = _load_json(state / "bootstrap.json")
        if not boot:
            created = await stack.create_organization("Default organization", "owner@example.com", "Owner")
            boot = {
                "organization_id": created.organization.id,
                "owner_email": created.owner.email,
                "api_key": created.api_key.secret,
            }
            _save_json(state / "bootstrap.json", boot)
        ready_s = time.monotonic() - t0
        policy = RestartPolicy()
        _banner(stack, boot, ready_s, state / "endpoints.json", policy)
        supervisor = Supervisor(policy, say=lambda line: print(line, flush=True))
        supervisor.add("postgres", pg)
        supervisor.add("kafka", kafka)
        stack.supervise(supervisor)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await supervisor.run(stop)
        print("\nstopping…", flush=True)
    finally:
        if stack:
            stack.stop()
        kafka.stop()
        pg.stop()
        print("stopped; state kept in", state, flush=True)


def _banner(stack: Stack, boot: dict, ready_s: float, endpoints: Path, policy: RestartPolicy) -> None:
    url, key = stack.gateway_url, boot["api_key"]
    print(
        f"""
================================================================================
 GPU fleet manager is ready in {ready_s:.1f}s   (Ctrl-C stops everything)

 Gateway      {url}/v1    (OpenAPI: {url}/v1/openapi.json, docs: {url}/docs)
 Dashboard    {url}/ui/   (sign in with the API key)
 API key      {key}
 gRPC         scheduler {stack.target("scheduler")} (same key in 'authorization: Bearer …')
 Agent gRPC   fleet {stack.target("fleet-agent")}, scheduler {stack.target("scheduler-agent")}  (node agents only)
 Kafka        {stack.kafka_bootstrap}  topics gpufleet.jobs.v1, gpufleet.costs.v1
 Agent        1 node with {stack.agent_gpus} SIMULATED GPUs (no real GPU is used)
 Logs         {stack.state_dir / "logs"}
 Endpoints    {endpoints}  (every address, /metrics and /readyz of each process)
 Supervised   a process that dies is restarted ({policy.initial_delay:.0f}s doubling to {policy.max_delay:.0f}s)

 Try the CLI:
   export GPUFLEET_URL={url} GPUFLEET_API_KEY={key}
   .venv/bin/gpufleet submit --gpus 1 --follow -- 'echo hello from $CUDA_VISIBLE_DEVICES'
   .venv/bin/gpufleet queue --all
 or curl:
   export GPUFLEET_KEY={key}
   curl -s {url}/v1/gpus -H "Authorization: Bearer $GPUFLEET_KEY"
   curl -s -X POST {url}/v1/jobs -H "Authorization: Bearer $GPUFLEET_KEY" \\
        -H 'Content-Type: application/json' \\
        -d '{{"command": "echo hello from $CUDA_VISIBLE_DEVICES", "gpu_count": 1, "gpu_memory_mb": 1024}}'
   curl -s {url}/v1/jobs -H "Authorization: Bearer $GPUFLEET_KEY"
================================================================================
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.devstack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start everything (embedded PostgreSQL and broker)")
    up.add_argument("--state-dir", default=os.environ.get("GPUFLEET_STATE_DIR", ".state"))
    up.add_argument("--reset", action="store_true", help="delete the state folder first")
    up.add_argument("--gpus", type=int, default=2, help="simulated GPUs on the local agent")
    args = parser.parse_args(argv)
    state = Path(args.state_dir).resolve()
    if args.reset and state.exists():
        shutil.rmtree(state)
    asyncio.run(_up(state, args.gpus))


if __name__ == "__main__":
    main()
