"""A stack of its own for the failover and gang tests: more scheduler replicas or more agents than the
suite's shared ``stack``, on a database (in the suite's PostgreSQL) and a broker of its own, so
nothing it does can be seen by, or disturb, the tests on the shared stack. Module-scoped: it stops
when its module ends."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.devstack import GRPC_SERVICES, Stack, service_db_passwords
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, free_port
from shared.migrate import migrate


@asynccontextmanager
async def own_stack(
    postgres: EmbeddedPostgres, state_dir: Path, name: str, **kw: Any
) -> AsyncIterator[tuple[Stack, str]]:
    """A running stack named ``name`` (its database ``gpufleet_<name>``) and one organization's key."""
    began = time.monotonic()
    broker = EmbeddedKafka(log_path=state_dir / f"e2e-{name}-tansu.log")
    broker.start()
    database = f"gpufleet_{name}"
    passwords = service_db_passwords(postgres)
    stack: Stack | None = None
    try:
        await migrate(admin_url(postgres, database), passwords=passwords, create_database=True)
        ports = {svc: free_port() for svc in (*GRPC_SERVICES, "gateway")}
        stack = Stack(
            state_dir / f"e2e-{name}",
            postgres.port,
            broker.bootstrap,
            ports,
            admin_token=secrets.token_urlsafe(16),
            agent_gpus=2,
            extra_env={"GPUFLEET_AGENT_KILL_GRACE_SECONDS": "2"},
            db_passwords=passwords,
            database=database,
            **kw,
        )
        await stack.start(timeout=120)
        org = await stack.create_organization(f"{name} org", f"owner@{name}.example", "Owner")
        print(f"[{name}] own stack ready in {time.monotonic() - began:.1f}s")
        yield stack, org.api_key.secret
    finally:
        if stack is not None:
            stack.stop()
        broker.stop()


def admin_url(postgres: EmbeddedPostgres, database: str) -> str:
    return postgres.admin_url.rsplit("/", 1)[0] + f"/{database}"


async def lease(postgres: EmbeddedPostgres, database: str) -> tuple[str, int, bool]:
    """The scheduler lease as the database holds it: holder, fencing token, whether it is live."""
    conn = await asyncpg.connect(admin_url(postgres, database))
    try:
        row = await conn.fetchrow(
            "SELECT holder, token, expires_at > now() AS live FROM scheduler.scheduler_lease WHERE id = 1"
        )
    finally:
        await conn.close()
    assert row is not None
    return row["holder"], int(row["token"]), bool(row["live"])


def process_of(stack: Stack, holder: str) -> str | None:
    """The stack's process a lease holder (``host:pid:nonce``) names."""
    pid = int(holder.split(":")[1]) if holder.count(":") == 2 else -1
    for name, proc in stack.processes.items():
        if proc.proc is not None and proc.proc.pid == pid and proc.alive():
            return name
    return None


async def get_ok(api: httpx.AsyncClient, path: str, **kw: Any) -> Any:
    """The body of a 200 answer; None while the service behind it is briefly away (a replica killed)."""
    try:
        r = await api.get(path, **kw)
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None
