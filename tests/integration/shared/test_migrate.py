"""shared.migrate against the harness PostgreSQL: enable_tenant_rls() (migrations/_common/002), the
transaction a run is applied in, the owner/runtime role split, and moving a legacy install to it.

Probe services get their own throw-away migrations folder (the real _common plus files written here),
roles and schema, so nothing here touches the schemas other tests use, and each is dropped afterwards.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from shared.db import Database, UnsafeDatabaseRole
from shared.migrate import LEDGER, SERVICES, load, migrate_service, migrations_dir, owner_role_name, role_name

pytestmark = pytest.mark.integration

ProbeFactory = Callable[[dict[str, str]], Awaitable[tuple[str, Path]]]

# Two scoped tables made by the function: one by organization_id (the default), one by its own id (as
# identity.organizations is).
PROBE_RLS = """
CREATE TABLE probe_rows (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), organization_id UUID NOT NULL);
SELECT enable_tenant_rls('probe_rows');
CREATE TABLE probe_orgs (id UUID PRIMARY KEY, name TEXT NOT NULL);
SELECT enable_tenant_rls('probe_orgs', 'id');
"""


@pytest.fixture
async def probe_service(postgres, tmp_path: Path) -> AsyncIterator[ProbeFactory]:
    """``service, root = await probe_service({"001_x.sql": sql})``: a new service named ``probe_<hex>``
    whose migrations are the real _common plus those files, in ``root``. Dropped at the end."""
    made: list[str] = []
    shutil.copytree(migrations_dir() / "_common", tmp_path / "_common")

    async def _make(files: dict[str, str]) -> tuple[str, Path]:
        service = f"probe_{uuid.uuid4().hex[:8]}"
        made.append(service)
        (tmp_path / service).mkdir()
        for name, sql in files.items():
            (tmp_path / service / name).write_text(sql)
        return service, tmp_path

    yield _make
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        for service in made:
            for role in (role_name(service), owner_role_name(service)):
                if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                    await conn.execute(f'DROP OWNED BY "{role}" CASCADE')
                    await conn.execute(f'DROP ROLE "{role}"')
    finally:
        await conn.close()


async def migrate_probe(postgres, service: str, root: Path) -> list[str]:
    return await migrate_service(
        postgres.admin_url, service, root, password=postgres.password_for(role_name(service))
    )


async def _scope(conn: asyncpg.Connection, *, org: uuid.UUID | None = None, system: bool = False) -> None:
    # The settings shared.db.Database.transaction makes; an empty org with system off is no scope at all.
    await conn.execute(
        "SELECT set_config('app.org_id', $1, true), set_config('app.system', $2, true)",
        str(org) if org else "",
        "on" if system else "off",
    )


async def observe_isolation(
    url: str, table: str, org_column: str, extra: dict[str, str]
) -> dict[str, object]:
    """What each scope may see and write in ``table``, connected as ``url`` (a service's runtime role;
    FORCE binds the owner as well). ``extra``: SQL values for the other NOT NULL columns. All in one rolled-back
    transaction, so it leaves no row behind even in a table other tests use."""
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    columns = ", ".join([org_column, *extra])
    insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['$1', *extra.values()])})"
    visible = f"SELECT {org_column} FROM {table} WHERE {org_column} = ANY($1::uuid[])"
    conn = await asyncpg.connect(url)

    async def write(org: uuid.UUID) -> str:
        try:
            async with conn.transaction():  # a savepoint: a refused row leaves the outer transaction usable
                await conn.execute(insert, org)
        except asyncpg.InsufficientPrivilegeError:  # new row violates row-level security policy
            return "refused"
        except asyncpg.UniqueViolationError:  # only when an earlier write wrongly got through
            return "already there"
        return "allowed"

    async def sees() -> set[uuid.UUID]:
        return {r[0] for r in await conn.fetch(visible, [a, b, c])}

    try:
        tx = conn.transaction()
        await tx.start()
        try:
            seen: dict[str, object] = {}
            await _scope(conn, org=a)
            seen["org writes its own row"] = await write(a)
            seen["org writes another org's row"] = await write(b)
            await _scope(conn, system=True)
            seen["system writes any row"] = await write(b)
            seen["system sees"] = await sees() == {a, b}
            await _scope(conn, org=a)
            seen["org sees"] = await sees() == {a}
            seen["org updates another org's rows"] = await conn.execute(
                f"UPDATE {table} SET {org_column} = {org_column} WHERE {org_column} = $1", b
            )
            await _scope(conn)
            seen["no scope sees"] = await sees() == set()
            seen["no scope writes"] = await write(c)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return seen


TENANT_ISOLATION = {
    "org writes its own row": "allowed",
    "org writes another org's row": "refused",
    "system writes any row": "allowed",
    "system sees": True,  # both orgs' rows
    "org sees": True,  # its own rows only
    "org updates another org's rows": "UPDATE 0",
    "no scope sees": True,  # nothing
    "no scope writes": "refused",
}

_POLICY = """
SELECT p.permissive, p.roles::text[] AS roles, p.cmd, p.qual, p.with_check,
       c.relrowsecurity, c.relforcerowsecurity
  FROM pg_policies p
  JOIN pg_class c ON c.relname = p.tablename
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname
 WHERE p.schemaname = $1 AND p.tablename = $2
"""


async def policies(conn: asyncpg.Connection, schema: str, table: str) -> list[dict[str, object]]:
    return [dict(r) for r in await conn.fetch(_POLICY, schema, table)]


async def test_every_service_schema_has_the_function_owned_by_its_owner_role(postgres, migrate_schema):
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        for service in SERVICES:
            await migrate_schema(service)
            owner = await conn.fetchval(
                "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = to_regprocedure($1)",
                f"{service}.enable_tenant_rls(regclass, text)",
            )
            assert owner == owner_role_name(service), f"{service}.enable_tenant_rls missing or not its own"
    finally:
        await conn.close()


async def test_a_table_made_by_the_function_isolates_tenants_like_the_existing_ones(
    postgres, migrate_schema, probe_service
):
    service, root = await probe_service({"001_probe.sql": PROBE_RLS})
    await migrate_probe(postgres, service, root)
    probe_url = postgres.url_for(role_name(service))
    new_by_org = await observe_isolation(probe_url, "probe_rows", "organization_id", {})
    new_by_id = await observe_isolation(probe_url, "probe_orgs", "id", {"name": "'probe'"})
    old_by_org = await observe_isolation(
        await migrate_schema("notification"),
        "job_webhook_secrets",
        "organization_id",
        {"secret": "'whsec_t'"},
    )
    old_by_id = await observe_isolation(
        await migrate_schema("identity"), "organizations", "id", {"name": "'t'"}
    )
    assert old_by_org == old_by_id == TENANT_ISOLATION
    assert new_by_org == new_by_id == TENANT_ISOLATION


async def test_the_function_writes_the_same_policy_as_every_hand_written_one(
    postgres, migrate_schema, probe_service
):
    service, root = await probe_service({"001_probe.sql": PROBE_RLS})
    await migrate_probe(postgres, service, root)
    for s in SERVICES:
        await migrate_schema(s)
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        by_org = await policies(conn, service, "probe_rows")
        by_id = await policies(conn, service, "probe_orgs")
        assert len(by_org) == len(by_id) == 1
        assert by_org[0]["relrowsecurity"] and by_org[0]["relforcerowsecurity"]
        assert by_org[0]["qual"] == by_org[0]["with_check"]
        assert by_org[0]["cmd"] == "ALL" and by_org[0]["roles"] == ["public"]
        assert await policies(conn, "billing", "cost_tracking") == by_org
        assert await policies(conn, "identity", "organizations") == by_id
        existing = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_policies"
            " WHERE policyname = 'tenant_isolation' AND schemaname = ANY($1::text[])",
            list(SERVICES),
        )
        assert len(existing) >= 10, existing
        for row in existing:
            found = await policies(conn, row["schemaname"], row["tablename"])
            assert found in (by_org, by_id), (
                f"{row['schemaname']}.{row['tablename']}: tenant_isolation differs from enable_tenant_rls():"
                f" {found} vs {by_org}"
            )
    finally:
        await conn.close()


async def test_a_run_applies_all_pending_files_or_none(postgres, probe_service):
    service, root = await probe_service(
        {"001_first.sql": "CREATE TABLE first (id INT);", "002_broken.sql": "CREATE TABLE second (id NOPE);"}
    )
    with pytest.raises(asyncpg.PostgresError):
        await migrate_service(postgres.admin_url, service, root)
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        # One transaction for every file and the ledger: 001 and the ledger rolled back with 002.
        assert await conn.fetchval("SELECT to_regclass($1)", f"{service}.first") is None
        assert await conn.fetchval("SELECT to_regclass($1)", f"{service}.schema_migrations") is None
        assert await conn.fetchval("SELECT to_regnamespace($1)", service) is not None  # set-up stays
        (root / service / "002_broken.sql").write_text("CREATE TABLE second (id INT);")
        applied = await migrate_service(postgres.admin_url, service, root)
        assert applied == [
            "_common/001_outbox_and_processed_events",
            "_common/002_tenant_rls_function",
            f"{service}/001_first",
            f"{service}/002_broken",
        ]
        assert await migrate_service(postgres.admin_url, service, root) == []
        (root / service / "001_first.sql").write_text("CREATE TABLE first (id BIGINT);")
        with pytest.raises(SystemExit, match="was edited after it ran"):
            await migrate_service(postgres.admin_url, service, root)
    finally:
        await conn.close()


_OBJECTS = """
SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner) AS owner, c.relacl::text[] AS acl,
       c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1
UNION ALL
SELECT p.proname, 'function', pg_get_userbyid(p.proowner), p.proacl::text[], NULL, NULL
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = $1
UNION ALL
SELECT n.nspname, 'schema', pg_get_userbyid(n.nspowner), n.nspacl::text[], NULL, NULL
  FROM pg_namespace n WHERE n.nspname = $1
UNION ALL
SELECT d.defaclobjtype::text, 'default', pg_get_userbyid(d.defaclrole), d.defaclacl::text[], NULL, NULL
  FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
 WHERE n.nspname = $1
 ORDER BY 2, 1
"""


async def catalog(postgres, schema: str) -> list[dict[str, object]]:
    """Every object of ``schema`` with its owner, grants and RLS flags, and the default privileges."""
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        return [dict(r) for r in await conn.fetch(_OBJECTS, schema)]
    finally:
        await conn.close()


async def owned_by(postgres, role: str) -> int:
    """How many objects ``role`` owns anywhere in the database (pg_shdepend records every owner)."""
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid"
            " WHERE r.rolname = $1 AND d.deptype = 'o'"
            " AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            role,
        )
    finally:
        await conn.close()


async def install_the_old_way(postgres, service: str, root: Path) -> None:
    """What shared.migrate did before the owner role: the runtime role owned the schema and applied
    every file itself, ledger rows included."""
    runtime = role_name(service)
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        literal = await conn.fetchval("SELECT quote_literal($1)", postgres.password_for(runtime))
        await conn.execute(f'CREATE ROLE "{runtime}" LOGIN PASSWORD {literal}')
        await conn.execute(f'CREATE SCHEMA "{service}" AUTHORIZATION "{runtime}"')
        await conn.execute(f'ALTER ROLE "{runtime}" SET search_path = "{service}"')
        await conn.execute(f'GRANT CONNECT ON DATABASE gpufleet TO "{runtime}"')
        async with conn.transaction():
            await conn.execute(f'SET LOCAL ROLE "{runtime}"; SET LOCAL search_path = "{service}"')
            await conn.execute(LEDGER)
            for mig in load("_common", root) + load(service, root):
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    "common" if mig.component == "_common" else service,
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
    finally:
        await conn.close()


async def role_is_refused(url: str, schema: str) -> str | None:
    db = Database(url, schema, pool_size=1)
    try:
        await db.check_role()
    except UnsafeDatabaseRole as exc:
        return str(exc)
    finally:
        await db.dispose()
    return None


async def test_a_rerun_changes_nothing(postgres, probe_service):
    service, root = await probe_service({"001_probe.sql": PROBE_RLS})
    assert len(await migrate_probe(postgres, service, root)) == 3
    before = await catalog(postgres, service)
    assert await migrate_probe(postgres, service, root) == []
    assert await catalog(postgres, service) == before
    assert {row["owner"] for row in before if row["relkind"] != "default"} == {owner_role_name(service)}
    assert await owned_by(postgres, role_name(service)) == 0


async def test_a_legacy_install_moves_to_the_owner_role_and_keeps_its_data_and_policies(
    postgres, probe_service
):
    service, root = await probe_service({"001_probe.sql": PROBE_RLS})
    await install_the_old_way(postgres, service, root)
    runtime_url = postgres.url_for(role_name(service))
    assert "owns schema" in (await role_is_refused(runtime_url, service) or "")
    assert await owned_by(postgres, role_name(service)) > 0

    assert await migrate_probe(postgres, service, root) == []  # checksum-locked files are not re-run
    assert await owned_by(postgres, role_name(service)) == 0
    objects = await catalog(postgres, service)
    assert {row["owner"] for row in objects if row["relkind"] != "default"} == {owner_role_name(service)}
    tables = {row["relname"]: row for row in objects if row["relkind"] == "r"}
    assert tables["probe_rows"]["relforcerowsecurity"] and tables["probe_orgs"]["relforcerowsecurity"]
    assert await role_is_refused(runtime_url, service) is None
    assert await observe_isolation(runtime_url, "probe_rows", "organization_id", {}) == TENANT_ISOLATION
    assert await observe_isolation(runtime_url, "probe_orgs", "id", {"name": "'p'"}) == TENANT_ISOLATION

    # A migration written after the move: its table is the owner's, and the runtime role may use it
    # through default privileges, without a GRANT in the file.
    (root / service / "002_later.sql").write_text(
        "CREATE TABLE later (id BIGSERIAL PRIMARY KEY, organization_id UUID NOT NULL);\n"
        "SELECT enable_tenant_rls('later');\n"
    )
    assert await migrate_probe(postgres, service, root) == [f"{service}/002_later"]
    assert await observe_isolation(runtime_url, "later", "organization_id", {}) == TENANT_ISOLATION
    assert await owned_by(postgres, role_name(service)) == 0
    after = await catalog(postgres, service)
    assert await migrate_probe(postgres, service, root) == []
    assert await catalog(postgres, service) == after
