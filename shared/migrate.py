"""Versioned, ordered SQL migrations with a ledger, one schema and two roles per service.

Layout (seed 001's habit: ordered files, idempotent fixtures)::

    migrations/_common/NNN_*.sql      plumbing every service schema gets (outbox, processed events,
                                      the enable_tenant_rls() function its own files call)
    migrations/<service>/NNN_*.sql    the service's own schema, in order
    migrations/<service>/fixtures/*.sql  reference data, upserted on every run

Roles, per service (the database is a boundary, not only a store):

* ``gpufleet_<service>_owner`` (NOLOGIN): owns the schema ``<service>`` and everything in it. Nobody
  logs in as it; this tool, connected as an administrator, switches to it (``SET ROLE``) to apply files.
* ``gpufleet_<service>`` (LOGIN): what the service connects as. It owns nothing; it has USAGE on its
  schema, SELECT/INSERT/UPDATE/DELETE on its tables (SELECT only on the ledger), USAGE/SELECT on its
  sequences and EXECUTE on its functions, granted as *default privileges* of the owner, so a table a
  later migration creates is covered without a GRANT in the file. No TRUNCATE, no DDL, no other schema.

Neither role is SUPERUSER or BYPASSRLS (this tool takes those away if someone added them), and row-level
security stays FORCEd on tenant tables, so it binds the owner too. ``shared.db.Database.check_role``
refuses to run a service as a role that could bypass it.

Installations migrated before the split have the runtime role as owner. Applied files are checksum-
locked, so the move is not a migration file: on every run, before applying files, this tool reassigns
whatever the runtime role owns to the owner role (``REASSIGN OWNED``) and re-grants the DML set. Both are
idempotent: on an up-to-date database they change nothing.

Transactions, per service: the role, schema, ownership and grant set-up runs first, outside any
transaction (each statement commits on its own, and every one is safe to repeat). Everything after it is
ONE transaction, as the owner role: the advisory lock that serialises concurrent runs, the ledger table,
every pending file (``_common`` first, then the service's, in order) with its ledger row, and the
fixtures. So a run that fails anywhere, or finds an edited file, applies none of the pending files (only
the set-up stays), never half of them; and a migration cannot contain statements PostgreSQL refuses
inside a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``). With ``--service all`` the
services are migrated one after another, each in its own transaction: a failure in one leaves the ones
before it migrated.

The runtime role's password comes from ``passwords`` (the embedded stack's generated ones) or else
``GPUFLEET_<SERVICE>_DB_PASSWORD``; with neither, an existing password is left as it is.

    python -m shared.migrate --admin-url postgresql://postgres:PW@localhost:5432/gpufleet --service all
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("gpufleet.migrate")

SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    return Path(os.environ.get("GPUFLEET_MIGRATIONS_DIR", Path(__file__).resolve().parents[1] / "migrations"))


def role_name(service: str) -> str:
    """The role the service connects as at run time (DML only, owns nothing)."""
    return f"gpufleet_{service}"


def owner_role_name(service: str) -> str:
    """The role that owns the service's schema and objects; migrations run as it, nothing logs in as it."""
    return f"gpufleet_{service}_owner"


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


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _ensure_role(conn: asyncpg.Connection, role: str, *, login: bool) -> None:
    """Create ``role`` if missing; take SUPERUSER/BYPASSRLS/CREATEROLE/CREATEDB away if it has them."""
    found = await conn.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
        role,
    )
    wanted = "LOGIN" if login else "NOLOGIN"
    if found is None:
        await conn.execute(
            f"CREATE ROLE {_ident(role)} {wanted} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"
        )
        return
    # Only what is wrong is altered: a non-superuser administrator may not even name SUPERUSER/BYPASSRLS.
    fixes = [
        attr
        for attr, bad in (
            (wanted, found["rolcanlogin"] != login),
            ("NOSUPERUSER", found["rolsuper"]),
            ("NOBYPASSRLS", found["rolbypassrls"]),
            ("NOCREATEROLE", found["rolcreaterole"]),
            ("NOCREATEDB", found["rolcreatedb"]),
        )
        if bad
    ]
    if fixes:
        log.warning("role %s had %s; altered", role, ", ".join(a.removeprefix("NO") for a in fixes))
        await conn.execute(f"ALTER ROLE {_ident(role)} {' '.join(fixes)}")


async def _ensure_roles_and_schema(conn: asyncpg.Connection, service: str, password: str | None) -> None:
    owner, runtime, schema = _ident(owner_role_name(service)), _ident(role_name(service)), _ident(service)
    await _ensure_role(conn, owner_role_name(service), login=False)
    await _ensure_role(conn, role_name(service), login=True)
    if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        # A CREATEROLE administrator (a managed PostgreSQL) needs membership to SET ROLE to the owner.
        await conn.execute(f"GRANT {owner} TO CURRENT_USER")
    if password:
        # Quoted by PostgreSQL itself: the password never appears in a log line.
        literal = await conn.fetchval("SELECT quote_literal($1)", password)
        await conn.execute(f"ALTER ROLE {runtime} PASSWORD {literal}")
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
    # Installations from before the owner role: everything the runtime role owns (its schema, tables,
    # sequences, the enable_tenant_rls function) moves to the owner. FORCEd row-level security and the
    # policies are properties of the tables and survive the move. A no-op when it owns nothing.
    await conn.execute(f"REASSIGN OWNED BY {runtime} TO {owner}")
    await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {owner}")
    await conn.execute(f"ALTER ROLE {runtime} SET search_path = {schema}")
    await conn.execute(f"ALTER ROLE {owner} SET search_path = {schema}")
    db = _ident(await conn.fetchval("SELECT current_database()"))
    await conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {runtime}")
    await conn.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM {runtime}")
    await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {runtime}")
    # Objects that exist already (a legacy install's, whose grants the ownership move dropped) ...
    await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {runtime}")
    await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}")
    await conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {runtime}")
    # ... and every one the owner creates from now on.
    for grant in (
        "SELECT, INSERT, UPDATE, DELETE ON TABLES",
        "USAGE, SELECT ON SEQUENCES",
        "EXECUTE ON FUNCTIONS",
    ):
        await conn.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {grant} TO {runtime}"
        )
    await _read_only_ledger(conn, service)


async def _read_only_ledger(conn: asyncpg.Connection, service: str) -> None:
    """The service reads its schema version (``check_schema``) but may not rewrite its own history."""
    if await conn.fetchval("SELECT to_regclass($1)", f"{service}.schema_migrations"):
        await conn.execute(
            f"REVOKE INSERT, UPDATE, DELETE ON {_ident(service)}.schema_migrations FROM {_ident(role_name(service))}"
        )


async def migrate_service(
    admin_url: str, service: str, root: Path | None = None, *, password: str | None = None
) -> list[str]:
    """Bring one service's schema up to date; returns the names of the files applied. ``password``: the
    runtime role's (default ``GPUFLEET_<SERVICE>_DB_PASSWORD``; neither keeps the current one)."""
    applied_now: list[str] = []
    password = password or os.environ.get(f"GPUFLEET_{service.upper()}_DB_PASSWORD")
    conn = await asyncpg.connect(admin_url)
    try:
        await _ensure_roles_and_schema(conn, service, password)
        files = load("_common", root) + load(service, root)
        fixtures = sorted(((root or migrations_dir()) / service / "fixtures").glob("*.sql"))
        # One transaction for the lock, the ledger, all pending files and the fixtures (module docstring).
        async with conn.transaction():
            await conn.execute(
                f"SET LOCAL ROLE {_ident(owner_role_name(service))}; SET LOCAL search_path = {_ident(service)}"
            )
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
        await _read_only_ledger(conn, service)  # on a first run the ledger was made just now
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
    admin_url: str,
    services: tuple[str, ...] = SERVICES,
    create_database: bool = False,
    *,
    passwords: Mapping[str, str] | None = None,
) -> None:
    """Migrate ``services`` in order; ``passwords``: service name -> its runtime role's password."""
    if create_database:
        await ensure_database(admin_url)
    for service in services:
        applied = await migrate_service(admin_url, service, password=(passwords or {}).get(service))
        log.info("migrated %s: %s", service, ", ".join(applied) if applied else "up to date")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("GPUFLEET_ADMIN_DATABASE_URL"),
        help="administrator URL of the target database (env GPUFLEET_ADMIN_DATABASE_URL)",
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
