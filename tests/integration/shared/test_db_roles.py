"""The database as a boundary: what a service's runtime role cannot do, and who may connect at all.

A service connects as ``gpufleet_<service>``, which owns nothing and holds DML only (shared/migrate.py).
Every statement below is one a compromised service would try to step around row-level security or to
reach another service's data; each must be refused by PostgreSQL itself, not by our code.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from shared.db import Database, UnsafeDatabaseRole
from shared.devstack import Stack
from shared.embedded.postgres import EmbeddedPostgres
from shared.migrate import migrate, owner_role_name, role_name

pytestmark = pytest.mark.integration

REFUSED = {
    "create a table": "CREATE TABLE billing.sneaky (id INT)",
    "create a table unqualified": "CREATE TABLE sneaky (id INT)",
    "alter a table": "ALTER TABLE cost_tracking ADD COLUMN sneaky INT",
    "stop forcing RLS": "ALTER TABLE cost_tracking NO FORCE ROW LEVEL SECURITY",
    "disable RLS": "ALTER TABLE cost_tracking DISABLE ROW LEVEL SECURITY",
    "drop the policy": "DROP POLICY tenant_isolation ON cost_tracking",
    "drop a table": "DROP TABLE cost_tracking",
    "truncate a table": "TRUNCATE cost_tracking",
    "create a function": "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "rewrite the ledger": "DELETE FROM schema_migrations",
    "become the owner": "SET ROLE gpufleet_billing_owner",
    "give itself BYPASSRLS": "ALTER ROLE gpufleet_billing BYPASSRLS",
    "make itself superuser": "ALTER ROLE gpufleet_billing SUPERUSER",
    "create a schema": "CREATE SCHEMA sneaky",
    "read another service's schema": "SELECT count(*) FROM identity.organizations",
    "read another service's outbox": "SELECT count(*) FROM identity.outbox",
    # With row_security off, PostgreSQL raises instead of filtering: it never means "see every row".
    "switch row security off and read": "SET LOCAL row_security = off; SELECT count(*) FROM cost_tracking",
}


@pytest.fixture
async def billing(migrate_schema) -> AsyncIterator[asyncpg.Connection]:
    await migrate_schema("identity")  # so "another schema" exists and has rows to protect
    conn = await asyncpg.connect(await migrate_schema("billing"))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("statement", REFUSED.values(), ids=REFUSED.keys())
async def test_the_runtime_role_is_refused(billing: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with billing.transaction():
            await billing.execute(statement)


async def test_the_runtime_role_can_do_its_work(billing: asyncpg.Connection) -> None:
    assert await billing.fetchval("SELECT current_user") == "gpufleet_billing"
    assert await billing.fetchval("SELECT max(version) FROM schema_migrations WHERE component = 'common'")
    tx = billing.transaction()
    await tx.start()
    try:
        await billing.execute("SELECT set_config('app.system', 'on', true)")
        await billing.execute(
            "INSERT INTO cost_tracking (id, organization_id, job_id, gpu_id, gpu_type, start_time, end_time,"
            " seconds, cost_per_hour, total_cost) VALUES ($1, $1, $1, $1, 't4', now(), now(), 0, 0, 0)",
            uuid.uuid4(),
        )
        assert await billing.execute("UPDATE cost_tracking SET gpu_type = 'a100'") != "UPDATE 0"
        assert await billing.execute("DELETE FROM cost_tracking WHERE gpu_type = 'a100'") != "DELETE 0"
        await billing.execute(
            "INSERT INTO outbox (event_id, topic, event_type, headers, payload)"
            " VALUES (gen_random_uuid(), 't', 'e', '{}', '')"
        )  # a BIGSERIAL: sequence use
    finally:
        await tx.rollback()


@pytest.fixture
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PGPASSWORD or ~/.pgpass can supply the password behind the test's back."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))


@pytest.mark.usefixtures("no_ambient_password")
@pytest.mark.parametrize("role", ["gpufleet_billing", "postgres"])
async def test_nobody_connects_without_their_password(postgres, migrate_schema, role: str) -> None:
    await migrate_schema("billing")
    await migrate_schema("identity")
    socket_dir = str(postgres.data_dir / "pgdata")
    wrong = postgres.password_for("gpufleet_identity")  # a real password, of another role
    attempts = {
        "tcp, no password": {"host": "127.0.0.1"},
        "tcp, another role's password": {"host": "127.0.0.1", "password": wrong},
        "unix socket, no password": {"host": socket_dir},
    }
    for name, how in attempts.items():
        try:
            conn = await asyncpg.connect(port=postgres.port, user=role, database="gpufleet", **how)
        except asyncpg.InvalidPasswordError:
            continue
        await conn.close()
        pytest.fail(f"{role} connected with {name}")
    conn = await asyncpg.connect(
        host=socket_dir,
        port=postgres.port,
        user=role,
        database="gpufleet",
        password=postgres.password_for(role),
    )
    await conn.close()


async def test_the_devstack_hands_each_service_a_url_for_its_own_role_only(postgres, migrate_schema) -> None:
    services = ("billing", "identity")
    for service in services:
        await migrate_schema(service)
    stack = Stack(
        postgres.data_dir / "stack",
        postgres.port,
        "127.0.0.1:1",
        {
            name: 1
            for name in ("identity", "fleet", "scheduler", "billing", "monitoring", "notification", "gateway")
        },
        "admin-token",
        db_passwords={s: postgres.password_for(role_name(s)) for s in services},
    )
    for service in services:
        url = stack.env_for(service)[f"GPUFLEET_{service.upper()}_DATABASE_URL"]
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_user") == role_name(service)
        finally:
            await conn.close()
    # billing's password does not open identity's role
    borrowed = stack.database_url("billing").replace("gpufleet_billing:", "gpufleet_identity:")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(borrowed)


# ----------------------------------------------------------------------------- check_role

RoleFactory = Callable[[str], Awaitable[str]]


@pytest.fixture
async def login_role(postgres) -> AsyncIterator[RoleFactory]:
    """``url = await login_role("BYPASSRLS")``: a throw-away login role with those attributes."""
    made: list[str] = []
    admin = await asyncpg.connect(postgres.admin_url)

    async def _make(attributes: str) -> str:
        role = f"probe_role_{uuid.uuid4().hex[:8]}"
        made.append(role)
        literal = await admin.fetchval("SELECT quote_literal($1)", postgres.password_for(role))
        await admin.execute(f'CREATE ROLE "{role}" LOGIN {attributes} PASSWORD {literal}')
        await admin.execute(f'GRANT USAGE ON SCHEMA billing TO "{role}"')
        return postgres.url_for(role)

    try:
        yield _make
    finally:
        for role in made:
            await admin.execute(f'DROP OWNED BY "{role}"')
            await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def refusal(url: str) -> str | None:
    db = Database(url, "billing", pool_size=1)
    try:
        await db.check_role()
    except UnsafeDatabaseRole as exc:
        assert exc.reachable  # a wrong deployment: the runtime exits instead of retrying
        return str(exc)
    finally:
        await db.dispose()
    return None


async def test_check_role_accepts_the_runtime_role(migrate_schema) -> None:
    assert await refusal(await migrate_schema("billing")) is None


async def test_check_role_refuses_a_superuser(postgres, migrate_schema) -> None:
    await migrate_schema("billing")
    assert "it is a superuser" in (await refusal(postgres.admin_url) or "")


async def test_check_role_refuses_bypassrls(migrate_schema, login_role: RoleFactory) -> None:
    await migrate_schema("billing")
    assert "it has BYPASSRLS" in (await refusal(await login_role("BYPASSRLS")) or "")


async def test_check_role_refuses_the_owner_and_its_members(
    postgres, migrate_schema, login_role: RoleFactory
) -> None:
    await migrate_schema("billing")
    url = await login_role("")
    assert await refusal(url) is None  # a plain role is fine ...
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        member = url.split("//")[1].split(":")[0]
        await admin.execute(f'GRANT "{owner_role_name("billing")}" TO "{member}"')
    finally:
        await admin.close()
    message = await refusal(url) or ""  # ... until it can act as the owner
    assert "owns schema 'billing'" in message and "cost_tracking" in message
    assert "Connect as gpufleet_billing" in message


async def test_check_role_refuses_a_role_owning_one_table(
    postgres, migrate_schema, login_role: RoleFactory
) -> None:
    await migrate_schema("billing")
    url = await login_role("")
    role = url.split("//")[1].split(":")[0]
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f"CREATE TABLE billing.stray_{role} (id INT)")
        await admin.execute(f'ALTER TABLE billing.stray_{role} OWNER TO "{role}"')
        assert f"owns 1 table(s) in 'billing' (stray_{role})" in (await refusal(url) or "")
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS billing.stray_{role}")
        await admin.close()


# ----------------------------------------------------------------------------- the embedded server

TRUST_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"


@pytest.mark.usefixtures("no_ambient_password")
async def test_a_data_folder_from_before_passwords_is_converted_and_passwords_stay_stable(
    tmp_path: Path,
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", durable=False)
    pg.start()
    try:
        # Make it what an old `.state/postgres` was: trust for everyone, no password anywhere.
        admin = await asyncpg.connect(pg.admin_url)
        await admin.execute("ALTER ROLE postgres PASSWORD NULL")
        await admin.close()
    finally:
        pg.stop()
    (pg.data_dir / "pgdata" / "pg_hba.conf").write_text(TRUST_HBA)
    pg.secrets_path.unlink()

    again = EmbeddedPostgres(tmp_path / "pg", port=pg.port, durable=False)
    again.start()
    try:
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host="127.0.0.1", port=again.port, user="postgres", database="gpufleet")
        await migrate(
            again.admin_url, ("billing",), passwords={"billing": again.password_for("gpufleet_billing")}
        )
        urls = (again.admin_url, again.url_for("gpufleet_billing"))
    finally:
        again.stop()
    assert stat.S_IMODE(again.secrets_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(again.data_dir.stat().st_mode) == 0o700

    restarted = EmbeddedPostgres(tmp_path / "pg", port=pg.port, durable=False)
    restarted.start()
    try:
        assert (restarted.admin_url, restarted.url_for("gpufleet_billing")) == urls  # same passwords
        for url, role in zip(urls, ("postgres", "gpufleet_billing"), strict=True):
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT current_user") == role
            await conn.close()
    finally:
        restarted.stop()
