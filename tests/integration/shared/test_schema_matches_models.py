"""Every SQLModel/SQLAlchemy table in ``services/*/adapters/orm.py`` matches what the migrations built.

The migrations are the source of truth for DDL and nothing checks the models against them at run time:
a model column the migrations never added, a BIGINT column the model binds as INTEGER (asyncpg casts
every parameter to the model's type), or a TIMESTAMPTZ the model calls naive would only show up as a
failure in production. So each service schema is migrated in the harness PostgreSQL and compared,
column by column, with ``information_schema.columns``: the set of columns, each column's type and its
nullability. Modules and tables are discovered, never listed here, so a new table or a new service is
checked the day it appears.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest
from sqlalchemy import (
    ARRAY,
    CHAR,
    JSON,
    REAL,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.dialects.postgresql import INTERVAL, JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ORM_MODULES = sorted(ROOT.glob("services/*/adapters/orm.py"))

_COLUMNS = """
SELECT column_name, data_type, udt_name, is_nullable, character_maximum_length,
       numeric_precision, numeric_scale
  FROM information_schema.columns
 WHERE table_schema = $1 AND table_name = $2
"""


def pg_type_of_model(t: TypeEngine) -> str:
    """The PostgreSQL type a model column's SQLAlchemy type stands for, spelled as :func:`pg_type_of_db`
    spells the migrated one. Unbounded VARCHAR and TEXT are one type to PostgreSQL, so both read "text"."""
    while isinstance(t, TypeDecorator):  # SQLModel's AutoString, UTCDateTime, project decorators
        t = t.impl_instance
    if isinstance(t, ARRAY):
        return pg_type_of_model(t.item_type) + "[]"
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, SmallInteger):
        return "int2"
    if isinstance(t, Integer):
        return "int4"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Uuid):
        return "uuid"
    if isinstance(t, JSONB):
        return "jsonb"
    if isinstance(t, JSON):
        return "json"
    if isinstance(t, LargeBinary):
        return "bytea"
    if isinstance(t, DateTime):
        return "timestamptz" if t.timezone else "timestamp"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, Time):
        return "timetz" if t.timezone else "time"
    if isinstance(t, Interval | INTERVAL):
        return "interval"
    if isinstance(t, REAL) or (
        isinstance(t, Float) and not isinstance(t, Double) and (t.precision or 53) <= 24
    ):
        return "float4"
    if isinstance(t, Float):  # FLOAT without a precision is DOUBLE PRECISION in PostgreSQL
        return "float8"
    if isinstance(t, Numeric):
        return f"numeric({t.precision},{t.scale or 0})" if t.precision is not None else "numeric"
    if isinstance(t, UserDefinedType):  # a type SQLAlchemy has no name for (xid8): its own spelling
        return str(t.get_col_spec())
    if isinstance(t, Enum):
        return f"unmapped SQLAlchemy type {t!r} (extend pg_type_of_model)"
    if isinstance(t, CHAR):
        return f"bpchar({t.length or 1})"
    if isinstance(t, String):
        return "text" if isinstance(t, Text) or t.length is None else f"varchar({t.length})"
    return f"unmapped SQLAlchemy type {t!r} (extend pg_type_of_model)"


def pg_type_of_db(row: asyncpg.Record) -> str:
    udt = row["udt_name"]
    if row["data_type"] == "ARRAY":
        return udt.removeprefix("_") + "[]"
    if udt == "numeric" and row["numeric_precision"] is not None:
        return f"numeric({row['numeric_precision']},{row['numeric_scale']})"
    if udt in ("varchar", "bpchar") and row["character_maximum_length"] is not None:
        return f"{udt}({row['character_maximum_length']})"
    return "text" if udt == "varchar" else udt


def tables_of(module: ModuleType) -> list[Table]:
    """Tables of classes defined in ``module`` (SQLModel ``table=True`` or declarative) and module-level
    ``Table`` objects; a table class imported from elsewhere is checked where it is defined."""
    found: dict[str, Table] = {}
    for obj in vars(module).values():
        if isinstance(obj, type):
            table = getattr(obj, "__table__", None) if obj.__module__ == module.__name__ else None
        else:
            table = obj
        if isinstance(table, Table):
            found[table.fullname] = table
    return list(found.values())


def compare(schema: str, table: Table, db_columns: dict[str, asyncpg.Record]) -> list[str]:
    where = f"{schema}.{table.name}"
    if not db_columns:
        return [f"{where}: the model has this table, the migrations do not"]
    model_columns: dict[str, Column] = {c.name: c for c in table.columns}
    problems = [
        f"{where}.{name}: the model has this column, the migrations do not"
        for name in sorted(model_columns.keys() - db_columns.keys())
    ]
    problems += [
        f"{where}.{name}: the migrations have this column ({pg_type_of_db(db_columns[name])}), the model does not"
        for name in sorted(db_columns.keys() - model_columns.keys())
    ]
    for name in sorted(model_columns.keys() & db_columns.keys()):
        column, row = model_columns[name], db_columns[name]
        model_type, db_type = pg_type_of_model(column.type), pg_type_of_db(row)
        if model_type != db_type:
            problems.append(
                f"{where}.{name}: type differs: model {model_type} ({column.type!r}), migrations {db_type}"
            )
        db_nullable = row["is_nullable"] == "YES"
        if bool(column.nullable) != db_nullable:
            problems.append(
                f"{where}.{name}: nullability differs: model {'NULL' if column.nullable else 'NOT NULL'}, "
                f"migrations {'NULL' if db_nullable else 'NOT NULL'}"
            )
    return problems


def test_every_service_has_an_orm_module_to_check():
    assert len(ORM_MODULES) >= 6, f"expected the services' orm.py modules, found {ORM_MODULES}"


@pytest.mark.parametrize("orm_path", ORM_MODULES, ids=lambda p: p.parts[-3])
async def test_models_match_the_migrated_schema(orm_path: Path, postgres, migrate_schema):
    service = orm_path.parts[-3]
    module = importlib.import_module(f"services.{service}.adapters.orm")
    tables = tables_of(module)
    assert tables, f"{orm_path}: no SQLModel/SQLAlchemy tables found"
    await migrate_schema(service)
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        problems: list[str] = []
        for table in tables:
            schema = table.schema or service
            rows = await conn.fetch(_COLUMNS, schema, table.name)
            problems += compare(schema, table, {r["column_name"]: r for r in rows})
    finally:
        await conn.close()
    assert not problems, f"{orm_path.relative_to(ROOT)} disagrees with migrations/{service}:\n" + "\n".join(
        problems
    )


async def test_a_drifted_model_is_reported_by_table_column_and_both_sides(postgres, migrate_schema):
    drifted = Table(
        "cost_tracking",
        MetaData(),
        Column("id", Integer, primary_key=True),  # the migration says UUID
        Column("organization_id", Uuid, nullable=True),  # the migration says NOT NULL
        Column("start_time", DateTime(timezone=False), nullable=False),  # the migration says TIMESTAMPTZ
        Column("seconds", Numeric(20, 4), nullable=False),  # the migration says NUMERIC(20, 6)
        Column("not_migrated", Text),
        schema="billing",
    )
    await migrate_schema("billing")
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        rows = await conn.fetch(_COLUMNS, "billing", "cost_tracking")
    finally:
        await conn.close()
    problems = compare("billing", drifted, {r["column_name"]: r for r in rows})
    assert "billing.cost_tracking.id: type differs: model int4 (Integer()), migrations uuid" in problems
    assert (
        "billing.cost_tracking.organization_id: nullability differs: model NULL, migrations NOT NULL"
        in problems
    )
    assert any(
        p.startswith("billing.cost_tracking.start_time: type differs: model timestamp (") for p in problems
    )
    assert any(
        p.startswith("billing.cost_tracking.seconds: type differs: model numeric(20,4) (") for p in problems
    )
    assert "billing.cost_tracking.not_migrated: the model has this column, the migrations do not" in problems
    assert "billing.cost_tracking.gpu_ids" not in " ".join(problems)
    assert (
        "billing.cost_tracking.job_id: the migrations have this column (uuid), the model does not" in problems
    )
    missing = Table("no_such_table", MetaData(), Column("id", Integer, primary_key=True), schema="billing")
    assert compare("billing", missing, {}) == [
        "billing.no_such_table: the model has this table, the migrations do not"
    ]
