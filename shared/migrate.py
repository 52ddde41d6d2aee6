"""Versioned, ordered SQL migrations with a ledger, one schema and one role per service.

Layout (seed 001's habit: ordered files, idempotent fixtures)::

    migrations/_common/NNN_*.sql      plumbing every service schema gets (outbox, processed events,
                                      the enable_tenant_rls() function its own files call)
    migrations/<service>/NNN_*.sql    the service's own schema, in order
    migrations/<service>/fixtures/*.sql  reference data, upserted on every run

For each service this tool, connected as an administrator: creates the role ``gpufleet_<service>``
and the schema ``<service>`` owned by it, then applies the pending files *as that role* (so the service
owns its tables and nothing else), recording each in ``<service>.schema_migrations`` with its checksum.
An applied file whose text changed is refused.

Transactions, per service: the role and schema set-up runs first, outside any transaction (each statement
commits on its own, and every one is safe to repeat). Everything after it is ONE transaction: the advisory
lock that serialises concurrent runs, the ledger table, every pending file (``_common`` first, then the
service's, in order) with its ledger row, and the fixtures. So a run that fails anywhere, or finds an
edited file, applies none of the pending files (only the role and schema it created stay), never half
of them; and a migration cannot contain statements PostgreSQL refuses inside a transaction block
(``CREATE INDEX CONCURRENTLY``, ``VACUUM``). With ``--service all`` the services are migrated one after
another, each in its own transaction: a failure in one leaves the ones before it migrated.

    python -m shared.migrate --admin-url postgresql://postgres@localhost:5432/gpufleet --service all
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("gpufleet.migrate")

SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    return Path(os.environ.get("GPUFLEET_MIGRATIONS_DIR", Path(__file__).resolve().parents[1] / "migrations"))


def role_name(service: str) -> str:
    return f"gpufleet_{service}"


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(component: str, root: Path | None = None) -> list[Migration]:
    folder = (root or migrations_dir()) / component
    out = []
    for path in sorted(folder.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise ValueError(f"{path}: migration files are named NNN_lower_snake.sql")
        out.append(Migration(component, int(m.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise ValueError(f"{folder}: versions must run 1..n without gaps, found {versions}")
    return out


def latest_version(component: str, root: Path | None = None) -> int:
    return len(load(component, root))


LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)"""


async def _ensure_role_and_schema(conn: asyncpg.Connection, service: str) -> None:
    role = role_name(service)
    password = os.environ.get(f"GPUFLEET_{service.upper()}_DB_PASSWORD")
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    if password:
        # Quoted by PostgreSQL itself: the password never appears in a log line.
        await conn.execute(
            f'ALTER ROLE "{role}" PASSWORD {await conn.fetchval("SELECT quote_literal($1)", password)}'
        )
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}" AUTHORIZATION "{role}"')
    await conn.execute(f'ALTER ROLE "{role}" SET search_path = "{service}"')
    db = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO "{role}"')


async def migrate_service(admin_url: str, service: str, root: Path | None = None) -> list[str]:
    """Bring one service's schema up to date; returns the names of the files applied."""
    applied_now: list[str] = []
    conn = await asyncpg.connect(admin_url)
    try:
        await _ensure_role_and_schema(conn, service)
        files = load("_common", root) + load(service, root)
        fixtures = sorted(((root or migrations_dir()) / service / "fixtures").glob("*.sql"))
        # One transaction for the lock, the ledger, all pending files and the fixtures (module docstring).
        async with conn.transaction():
            await conn.execute(f'SET LOCAL ROLE "{role_name(service)}"; SET LOCAL search_path = "{service}"')
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"gpufleet-migrate-{service}")
            await conn.execute(LEDGER)
            done = {
                (("common" if r["component"] == "common" else service), r["version"]): r["checksum"]
                for r in await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
            }
            for mig in files:
                component = "common" if mig.component == "_common" else service
                key = (component, mig.version)
                if key in done:
                    if done[key] != mig.checksum:
                        raise SystemExit(
                            f"{service}: applied migration {mig.component}/{mig.name} was edited after it ran; "
                            "add a new migration instead"
                        )
                    continue
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    component,
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
                applied_now.append(f"{mig.component}/{mig.name}")
            for fixture in fixtures:
                await conn.execute(fixture.read_text())
    finally:
        await conn.close()
    return applied_now


async def ensure_database(admin_url: str) -> None:
    """Create the target database named in ``admin_url`` if it does not exist yet."""
    base, _, dbname = admin_url.rpartition("/")
    dbname = dbname.split("?")[0]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()


async def migrate(
    admin_url: str, services: tuple[str, ...] = SERVICES, create_database: bool = False
) -> None:
    if create_database:
        await ensure_database(admin_url)
    for service in services:
        applied = await migrate_service(admin_url, service)
        log.info("migrated %s: %s", service, ", ".join(applied) if applied else "up to date")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("GPUFLEET_ADMIN_DATABASE_URL"),
        help="superuser URL of the target database (env GPUFLEET_ADMIN_DATABASE_URL)",
    )
    parser.add_argument("--service", default="all", choices=("all", *SERVICES))
    parser.add_argument("--create-database", action="store_true")
    args = parser.parse_args(argv)
    if not args.admin_url:
        parser.error("--admin-url or GPUFLEET_ADMIN_DATABASE_URL is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = SERVICES if args.service == "all" else (args.service,)
    try:
        asyncio.run(migrate(args.admin_url, services, args.create_database))
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"migration failed: {exc}")


if __name__ == "__main__":
    main()
