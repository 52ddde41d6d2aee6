"""Async database sessions (SQLAlchemy 2 async sessions over asyncpg; tables are SQLModel models) with a tenant scope.

Each service connects as its own role with ``search_path`` set to its own schema. Tenant tables have
row-level security forced on them, with a policy that admits a row when

* ``app.org_id`` (set per transaction by :meth:`Database.transaction` with ``org_id=...``) equals the
  row's ``organization_id``, or
* ``app.system = 'on'`` (``system=True``), for the service's own cross-tenant work: the scheduler's
  placement loop, consumers, the outbox relay.

A transaction with neither sees no tenant rows at all: forgetting the scope fails closed.

That policy is written once, as ``enable_tenant_rls(table, org_column)`` in every service schema
(migrations/_common/002); a new tenant table calls it rather than spelling the policy out again.

The policy only holds for a role that cannot step around it: the service's role owns nothing (the
schema belongs to ``gpufleet_<service>_owner``, shared/migrate.py) and is neither superuser nor
BYPASSRLS. :meth:`Database.check_role` refuses to run otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.failures import is_unavailable

U = TypeVar("U")

COMMON_SCHEMA_VERSION = 2  # the highest file in migrations/_common


def asyncpg_url(url: str) -> str:
    """Accept ``postgresql://`` URLs (as every other tool writes them) and pick the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


class SchemaVersionMismatch(SystemExit):
    """The schema is not where this build expects. ``reachable`` is False when the database could not
    be asked at all (then it is an outage to wait out, not a wrong deployment)."""

    def __init__(self, message: str, *, reachable: bool = True) -> None:
        super().__init__(message)
        self.reachable = reachable


class UnsafeDatabaseRole(SchemaVersionMismatch):
    """Connected as a role that could bypass row-level security or rewrite the schema: a wrong
    deployment, never an outage (``reachable`` is True)."""


_ROLE_CHECK = text(
    """
    SELECT r.rolname,
           r.rolsuper,
           r.rolbypassrls,
           ARRAY(SELECT p.rolname FROM pg_roles p
                  WHERE (p.rolsuper OR p.rolbypassrls) AND p.oid <> r.oid
                    AND pg_has_role(r.oid, p.oid, 'MEMBER')
                  ORDER BY p.rolname) AS privileged_memberships,
           ARRAY(SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                    AND pg_has_role(r.oid, c.relowner, 'MEMBER')
                  ORDER BY c.relname) AS owned,
           coalesce((SELECT pg_has_role(r.oid, n.nspowner, 'MEMBER') FROM pg_namespace n
                      WHERE n.nspname = :schema), false) AS owns_schema
      FROM pg_roles r
     WHERE r.rolname = current_user
    """
)


def _scope_statement(org_id: UUID | str | None, system: bool) -> str:
    """The statement that sets a transaction's tenant scope, with its values inlined (it travels with
    the ``BEGIN`` in one simple-protocol message, which takes no parameters): a UUID in its canonical
    form (``UUID()`` refuses anything else) and ``on``/``off``, so nothing of a caller's reaches the SQL text."""
    org = str(org_id if isinstance(org_id, UUID) else UUID(str(org_id))) if org_id else ""
    return (
        f"SELECT set_config('app.org_id', '{org}', true), "
        f"set_config('app.system', '{'on' if system else 'off'}', true);"
    )


class ScopedConnection(asyncpg.Connection):
    """An asyncpg connection whose next ``BEGIN`` carries the statement in :attr:`begin_with`.

    :meth:`Database.transaction` sets it, so a transaction's ``BEGIN`` and its tenant scope are one
    round trip instead of two (every transaction of every service pays it; measured: a round trip on
    loopback is most of what a short transaction costs the service). ``BEGIN`` is sent by asyncpg's
    ``Transaction.start`` (which SQLAlchemy's adapter calls to open a transaction) as a
    parameterless ``execute``, that is one simple-protocol query, which may hold several statements.
    The statement is used once and cleared, sent or not."""

    __slots__ = ("begin_with",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.begin_with: str | None = None

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        if self.begin_with is not None and not args and query.startswith("BEGIN"):
            query, self.begin_with = f"{query} {self.begin_with}", None
        return await super().execute(query, *args, timeout=timeout)


class Database:
    def __init__(self, url: str, schema: str, *, pool_size: int = 10) -> None:
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            asyncpg_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            # No ping per checkout (a round trip per transaction): :meth:`transaction` notices a connection
            # the server dropped on its first statement and retries that once on a fresh one instead.
            pool_pre_ping=False,
            connect_args={
                "connection_class": ScopedConnection,
                "server_settings": {"search_path": schema, "application_name": f"gpufleet-{schema}"},
            },
        )
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        # Woken after a commit that wrote outbox rows, so the in-process relay publishes at once.
        self.outbox_written = asyncio.Event()

    @asynccontextmanager
    async def transaction(
        self, *, org_id: UUID | str | None = None, system: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error, nothing leaves before commit.

        The scope rides on the transaction's ``BEGIN`` (one round trip, before the body runs). A
        pooled connection the server dropped fails that first message and is replaced once."""
        if org_id is None and not system:
            raise ValueError("a transaction needs a tenant (org_id=...) or system=True")
        scope = _scope_statement(org_id, system)
        for attempt in (1, 2):
            session = self._sessions()
            try:
                if await self._begin(session, scope):
                    break
            except BaseException:
                await session.close()
                raise
            await session.close()
            if attempt == 2:  # an outage (shared.failures.is_unavailable), not a bad request
                lost = ConnectionError("a fresh database connection was closed at once")
                raise DBAPIError(None, None, lost, connection_invalidated=True) from lost
        try:
            yield session
        except BaseException:
            try:
                await session.rollback()
            finally:
                await session.close()
            raise
        try:
            await session.commit()
            if session.info.pop("outbox_dirty", False):
                self.outbox_written.set()
        finally:
            await session.close()

    @staticmethod
    async def _begin(session: AsyncSession, scope: str) -> bool:
        """Open the session's transaction with its scope: one round trip, ``BEGIN`` and the scope in
        one message (:class:`ScopedConnection`). False when the pooled connection turned out to be one
        the server had closed (a restart, an idle timeout): it is thrown away, and since nothing of the
        transaction ran, the caller may take another."""
        await session.begin()
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        driver, adapted = raw.driver_connection, raw.dbapi_connection
        start = getattr(adapted, "_start_transaction", None)
        if not isinstance(driver, ScopedConnection) or start is None:
            # Not the engine Database made, or a SQLAlchemy whose asyncpg adapter begins otherwise:
            # the scope as a statement of its own (a second round trip), with the same retry.
            try:
                await session.execute(text(scope))
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                return False
            return True
        # SQLAlchemy's asyncpg adapter begins lazily, before a transaction's first statement; begun
        # here instead, so that a dead connection shows before the body runs (the retry stays safe).
        driver.begin_with = scope
        try:
            await start()
        except BaseException as exc:
            gone = isinstance(exc, Exception) and (
                driver.is_closed() or conn.dialect.is_disconnect(exc, adapted, None)  # type: ignore[arg-type]
            )
            # This connection is done whatever went wrong (a cancel included): asyncpg keeps a
            # transaction that failed to start as the connection's current one (its next BEGIN would
            # be a SAVEPOINT), and the server may already be inside this BEGIN, with this scope. Closed
            # here, its next checkout fails its BEGIN at once (``gone``) and takes another connection.
            driver.terminate()
            if not gone:
                raise
            await conn.invalidate()
            return False
        finally:
            driver.begin_with = None
        return True

    async def check_schema(self, component: str, expected: int) -> None:
        """Stop the service with a clear message unless its schema is exactly where the code expects."""
        wanted = {"common": COMMON_SCHEMA_VERSION, component: expected}
        try:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text("SELECT component, max(version) FROM schema_migrations GROUP BY component")
                    )
                ).all()
        except Exception as exc:
            raise SchemaVersionMismatch(
                f"schema {self.schema!r} is not migrated ({type(exc).__name__}: {exc}). "
                f"Run: python -m shared.migrate --service {component}",
                reachable=not is_unavailable(exc),
            ) from exc
        found = {c: int(v) for c, v in rows}
        for comp, version in wanted.items():
            if found.get(comp) != version:
                raise SchemaVersionMismatch(
                    f"schema {self.schema!r}: {comp} migrations at version {found.get(comp)}, this build "
                    f"expects {version}. Run: python -m shared.migrate --service {component}"
                )

    async def check_role(self) -> None:
        """Stop the service with a clear message when it is connected as a role that could bypass
        row-level security: a superuser, a BYPASSRLS role, a member of either, or the owner (or a
        member of the owner) of its schema or of any table in it. Call it at start-up, after
        :meth:`check_schema`; an unreachable database raises with ``reachable=False`` (wait it out)."""
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(_ROLE_CHECK, {"schema": self.schema})).one()
        except Exception as exc:
            raise SchemaVersionMismatch(
                f"could not check the database role for schema {self.schema!r} ({type(exc).__name__}: {exc})",
                reachable=not is_unavailable(exc),
            ) from exc
        reasons = []
        if row.rolsuper:
            reasons.append("it is a superuser")
        if row.rolbypassrls:
            reasons.append("it has BYPASSRLS")
        if row.privileged_memberships:
            reasons.append(f"it is a member of {', '.join(row.privileged_memberships)}")
        if row.owns_schema:
            reasons.append(f"it owns schema {self.schema!r}")
        if row.owned:
            shown = ", ".join(row.owned[:5]) + (", …" if len(row.owned) > 5 else "")
            reasons.append(f"it owns {len(row.owned)} table(s) in {self.schema!r} ({shown})")
        if reasons:
            raise UnsafeDatabaseRole(
                f"refusing to start as database role {row.rolname!r}: {'; '.join(reasons)}, so row-level "
                f"security would not bind it. Connect as gpufleet_{self.schema}, the DML-only role that "
                f"`python -m shared.migrate --service {self.schema}` creates (the schema's owner is "
                f"gpufleet_{self.schema}_owner, for migrations only)."
            )

    def unit_of_work(
        self, make: Callable[[AsyncSession], U]
    ) -> Callable[..., AbstractAsyncContextManager[U]]:
        """A unit-of-work factory: ``async with factory(org_id=...) as uow`` is one transaction whose
        session ``make`` wraps (a service's repository class)."""

        @asynccontextmanager
        async def factory(*, org_id: UUID | str | None = None, system: bool = False) -> AsyncIterator[U]:
            async with self.transaction(org_id=org_id, system=system) as session:
                yield make(session)

        return factory

    async def dispose(self) -> None:
        await self.engine.dispose()
