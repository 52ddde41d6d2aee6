"""A transaction's tenant scope travels with its BEGIN and never outlives it.

``Database.transaction`` hands the scope statement to the connection, which sends it in the same message
as the transaction's ``BEGIN`` (shared/db.py, ``ScopedConnection``)."""

from __future__ import annotations

import asyncio
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


async def test_a_transaction_cancelled_in_its_begin_leaves_nothing_for_the_next(migrate_schema, monkeypatch):
    """A cancel that lands once the BEGIN (with its scope) reached the server, before the answer was
    handled: the server is inside that transaction and asyncpg still counts it as the connection's own.
    The next transaction must not run inside it (with the cancelled one's scope)."""
    url = await migrate_schema("billing")
    real = asyncpg.Connection.execute
    stall = asyncio.Event()

    async def slow_begin(self, query, *args, **kwargs):
        result = await real(self, query, *args, **kwargs)
        if query.startswith("BEGIN") and stall.is_set():
            await asyncio.sleep(3600)
        return result

    monkeypatch.setattr(asyncpg.Connection, "execute", slow_begin)
    db = Database(url, "billing", pool_size=1)
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        async with db.transaction(system=True) as session:
            await session.execute(text("SELECT 1"))  # the pool's one connection, warmed up

        async def cancelled() -> None:
            async with db.transaction(org_id=first):
                pass

        stall.set()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cancelled(), 0.5)
        stall.clear()
        async with db.transaction(org_id=second) as session:
            assert tuple((await session.execute(_SCOPE)).one()) == (str(second), "off")
    finally:
        await db.dispose()
