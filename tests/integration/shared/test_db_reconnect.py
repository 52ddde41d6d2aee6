"""A pooled connection the server dropped costs nothing visible: the next transaction gets a fresh one.

The pool does not ping a connection before each transaction (a round trip per transaction); instead
``Database.transaction`` notices a dead connection on its first statement and retries once.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import Database

pytestmark = pytest.mark.integration


async def test_a_transaction_after_the_server_dropped_every_pooled_connection_succeeds(
    postgres, migrate_schema
):
    db = Database(await migrate_schema("billing"), "billing", pool_size=2)
    try:
        async with db.transaction(system=True) as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(postgres.admin_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        async with db.transaction(system=True) as session:
            again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            scope = (await session.execute(text("SELECT current_setting('app.system')"))).scalar_one()
        assert again != pid
        assert scope == "on"
    finally:
        await db.dispose()


async def test_an_error_inside_the_body_rolls_back_and_is_not_retried(migrate_schema):
    db = Database(await migrate_schema("billing"), "billing", pool_size=2)
    runs = 0
    try:
        with pytest.raises(ZeroDivisionError):
            async with db.transaction(system=True) as session:
                runs += 1
                await session.execute(text("CREATE TEMP TABLE t_rollback (x int) ON COMMIT DROP"))
                1 / 0  # noqa: B018
        assert runs == 1
        async with db.transaction(system=True) as session:
            assert (await session.execute(text("SELECT to_regclass('pg_temp.t_rollback')"))).scalar() is None
    finally:
        await db.dispose()
