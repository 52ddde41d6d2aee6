"""A transaction's tenant scope travels with its BEGIN and never outlives it.

``Database.transaction`` hands the scope statement to the connection, which sends it in the same message
as the transaction's ``BEGIN`` (shared/db.py, ``ScopedConnection``)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import Database

pytestmark = pytest.mark.integration

_SCOPE = text("SELECT current_setting('app.org_id', true), current_setting('app.system', true)")


async def test_the_first_statement_already_runs_in_the_scope_and_the_next_transaction_in_its_own(
    migrate_schema,
):
    db = Database(await migrate_schema("billing"), "billing", pool_size=1)
    org = uuid.uuid4()
    try:
        async with db.transaction(org_id=org) as session:
            assert tuple((await session.execute(_SCOPE)).one()) == (str(org), "off")
        async with db.transaction(system=True) as session:
            assert tuple((await session.execute(_SCOPE)).one()) == ("", "on")
    finally:
        await db.dispose()


async def test_a_transaction_that_ran_nothing_leaves_no_scope_on_its_pooled_connection(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing", pool_size=1)
    try:
        async with db.transaction(system=True) as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with db.transaction(system=True):
            pass  # no statement: no BEGIN went out, and the scope must not wait for the next one
        async with db.engine.connect() as conn:  # the same (only) pooled connection, outside any scope
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
            assert tuple((await conn.execute(_SCOPE)).one()) in {(None, None), ("", "")}
    finally:
        await db.dispose()


async def test_an_organization_that_is_not_a_uuid_never_reaches_the_sql(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing", pool_size=1)
    try:
        with pytest.raises(ValueError):
            async with db.transaction(org_id="x', true); DROP TABLE outbox; --"):
                pass
    finally:
        await db.dispose()


async def test_begin_and_scope_are_one_message(migrate_schema, monkeypatch):
    sent: list[str] = []
    real = asyncpg.Connection.execute

    async def spy(self, query, *args, **kwargs):
        sent.append(query)
        return await real(self, query, *args, **kwargs)

    url = await migrate_schema("billing")
    monkeypatch.setattr(asyncpg.Connection, "execute", spy)
    db = Database(url, "billing", pool_size=1)
    org = uuid.uuid4()
    try:
        async with db.transaction(org_id=org) as session:
            await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()
    # (SQLAlchemy's first connect adds a BEGIN/ROLLBACK of its own: the dialect's initialization.)
    (scoped,) = [q for q in sent if "set_config" in q]
    assert scoped.startswith("BEGIN") and f"set_config('app.org_id', '{org}', true)" in scoped
