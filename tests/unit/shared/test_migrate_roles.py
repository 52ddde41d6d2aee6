"""Roles without a database: migration files leave roles and privileges to the migrate tool, and the
devstack hands each service a URL for its own runtime role and password only."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from shared.devstack import GRPC_SERVICES, PROCESSES, Stack
from shared.migrate import SERVICES, load, owner_role_name, role_name

# Who owns what and who may do what is decided once, in shared/migrate.py, for every schema alike. A file
# that grants, changes an owner or switches role would make one schema differ from the rest; one that
# defines a SECURITY DEFINER function or turns row-level security off would open a way around it.
_ROLE_MANAGEMENT = re.compile(
    r"\b(GRANT|REVOKE|OWNER\s+TO|SET\s+ROLE|SET\s+SESSION\s+AUTHORIZATION|CREATE\s+ROLE|ALTER\s+ROLE"
    r"|CREATE\s+USER|SECURITY\s+DEFINER|BYPASSRLS|NO\s+FORCE\s+ROW\s+LEVEL|DISABLE\s+ROW\s+LEVEL"
    r"|row_security)\b",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"--[^\n]*")


@pytest.mark.parametrize("component", ["_common", *SERVICES])
def test_migration_files_do_not_manage_roles_or_privileges(component: str):
    for migration in load(component):
        found = _ROLE_MANAGEMENT.search(_COMMENT.sub("", migration.sql))
        assert not found, (
            f"migrations/{component}/{migration.name}.sql has {found.group(0)!r}: roles and grants belong "
            "to shared/migrate.py (default privileges cover new tables)"
        )


def test_the_rule_catches_what_it_is_for():
    for sql in (
        "GRANT SELECT ON t TO x",
        "alter table t owner to y",
        "ALTER TABLE t NO FORCE ROW LEVEL SECURITY",
    ):
        assert _ROLE_MANAGEMENT.search(sql), sql
    assert not _ROLE_MANAGEMENT.search("ALTER TABLE t FORCE ROW LEVEL SECURITY")


def test_each_service_has_a_distinct_owner_and_runtime_role():
    roles = [r for s in SERVICES for r in (role_name(s), owner_role_name(s))]
    assert len(set(roles)) == 2 * len(SERVICES)
    assert (
        owner_role_name("billing") == "gpufleet_billing_owner" and role_name("billing") == "gpufleet_billing"
    )


def test_the_devstack_gives_each_service_its_own_role_and_password(tmp_path: Path):
    passwords = {svc: f"pw/{svc}:@%" for svc in GRPC_SERVICES}  # characters a URL must escape
    ports = {name: 50100 + i for i, name in enumerate((*GRPC_SERVICES, "gateway"))}
    stack = Stack(tmp_path, 55999, "127.0.0.1:59999", ports, "a" * 20, db_passwords=passwords)
    for process in PROCESSES:
        env = stack.env_for(process)
        urls = {k: v for k, v in env.items() if k.endswith("_DATABASE_URL")}
        if process not in GRPC_SERVICES:
            assert not urls, process
            continue
        (url,) = urls.values()
        parts = urlsplit(url)
        assert (parts.username, unquote(parts.password or "")) == (role_name(process), passwords[process])
        others = [p for s, p in passwords.items() if s != process]
        assert not any(p in unquote(value) for value in env.values() for p in others), process
