"""shared.migrate without a database: how migration folders are read, and the one-policy rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.migrate import SERVICES, latest_version, load


def folder(root: Path, component: str, files: dict[str, str]) -> Path:
    (root / component).mkdir(parents=True)
    for name, sql in files.items():
        (root / component / name).write_text(sql)
    return root


def test_files_load_in_version_order_with_a_checksum_of_their_text(tmp_path: Path):
    root = folder(tmp_path, "svc", {"002_second.sql": "SELECT 2;", "001_first.sql": "SELECT 1;"})
    migrations = load("svc", root)
    assert [(m.version, m.name) for m in migrations] == [(1, "001_first"), (2, "002_second")]
    assert latest_version("svc", root) == 2
    assert migrations[0].checksum != migrations[1].checksum
    (root / "svc" / "001_first.sql").write_text("SELECT 1; ")
    assert load("svc", root)[0].checksum != migrations[0].checksum  # any edit is seen


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"001_a.sql": "", "003_c.sql": ""}, "without gaps"),
        ({"002_b.sql": ""}, "without gaps"),
        ({"001_Upper.sql": ""}, "NNN_lower_snake"),
        ({"1_short.sql": ""}, "NNN_lower_snake"),
    ],
)
def test_badly_named_or_gapped_folders_are_refused(tmp_path: Path, files: dict[str, str], error: str):
    with pytest.raises(ValueError, match=error):
        load("svc", folder(tmp_path, "svc", files))


_HAND_WRITTEN = re.compile(r"CREATE\s+POLICY\s+tenant_isolation\b", re.IGNORECASE)


@pytest.mark.parametrize("service", SERVICES)
def test_new_migrations_call_enable_tenant_rls_instead_of_writing_the_policy(service: str):
    # The 001 files predate migrations/_common/002 and are checksum-locked, so they keep their copies.
    for migration in load(service)[1:]:
        assert not _HAND_WRITTEN.search(migration.sql), (
            f"migrations/{service}/{migration.name}.sql writes the tenant_isolation policy by hand; "
            "use SELECT enable_tenant_rls('<table>'[, '<org column>']) (migrations/_common/002)"
        )


def test_the_common_function_defines_the_policy_it_is_named_for():
    sql = next(m.sql for m in load("_common") if m.name == "002_tenant_rls_function")
    assert "CREATE FUNCTION enable_tenant_rls(tbl regclass, org_column text DEFAULT 'organization_id')" in sql
    assert "FORCE ROW LEVEL SECURITY" in sql and "CREATE POLICY tenant_isolation" in sql
