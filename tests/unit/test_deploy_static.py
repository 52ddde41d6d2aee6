"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
GRPC_SERVICES = ("identity", "fleet", "scheduler", "billing", "monitoring", "notification")


def _module(service: dict) -> str | None:
    cmd = service.get("command") or []
    return cmd[2] if len(cmd) >= 3 and cmd[:2] == ["python", "-m"] else None


def _required_env(module: str) -> set[str]:
    config = importlib.import_module(f"{module}.config")
    names: set[str] = set()
    for obj in vars(config).values():
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == config.__name__:
            prefix = obj.model_config.get("env_prefix", "")
            for name, field in obj.model_fields.items():
                if field.is_required():
                    names.add(f"{prefix}{field.alias or name}".upper())
    assert names or module in {"services.gateway"}, f"{module}.config declares no required settings?"
    return names


def _port(value: str) -> int:
    return int(value.rsplit(":", 1)[1])


def test_compose_parses_and_has_every_process():
    assert {"postgres", "kafka", "migrate", *GRPC_SERVICES, "gateway", "agent"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


@pytest.mark.parametrize("name", [*GRPC_SERVICES, "gateway", "agent"])
def test_every_required_setting_is_provided(name):
    service = COMPOSE["services"][name]
    module = _module(service)
    assert module == f"services.{name}"
    env = service["environment"]
    missing = sorted(_required_env(module) - set(env))
    assert not missing, f"{name} lacks {missing} in docker-compose.yml"
    assert "healthcheck" in service or name == "agent"


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_ports_agree(name):
    services = COMPOSE["services"]
    env = services[name]["environment"]
    listen = _port(env[f"GPUFLEET_{name.upper()}_GRPC_LISTEN"])
    target = env[f"GPUFLEET_{name.upper()}_GRPC_TARGET"]
    assert target == f"{name}:{listen}"
    assert services[name]["healthcheck"]["test"][-1] == f"127.0.0.1:{listen}"
    for other, spec in services.items():  # every caller names the same address
        value = (spec.get("environment") or {}).get(f"GPUFLEET_{name.upper()}_GRPC_TARGET")
        assert value in (None, target), f"{other} points at {value} for {name}"


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_database_role_and_password_match_the_migration(name):
    url = COMPOSE["services"][name]["environment"][f"GPUFLEET_{name.upper()}_DATABASE_URL"]
    m = re.match(r"postgresql://(\w+):(\$\{[^}]+\})@postgres:5432/gpufleet$", url)
    assert m and m.group(1) == f"gpufleet_{name}"
    assert COMPOSE["services"]["migrate"]["environment"][f"GPUFLEET_{name.upper()}_DB_PASSWORD"] == m.group(2)


def test_dockerfile_copies_what_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_each_secret_reaches_only_the_processes_that_need_it():
    holders = {
        token: sorted(n for n, s in COMPOSE["services"].items() if token in (s.get("environment") or {}))
        for token in ("GPUFLEET_ADMIN_TOKEN", "GPUFLEET_AGENT_TOKEN")
    }
    assert holders["GPUFLEET_ADMIN_TOKEN"] == ["identity"]
    assert holders["GPUFLEET_AGENT_TOKEN"] == ["agent", "fleet", "scheduler"]
    for name in (*GRPC_SERVICES, "gateway"):
        urls = [k for k in COMPOSE["services"][name]["environment"] if k.endswith("_DATABASE_URL")]
        assert urls == ([f"GPUFLEET_{name.upper()}_DATABASE_URL"] if name != "gateway" else []), name


@pytest.mark.parametrize("name", [*GRPC_SERVICES, "gateway", "agent"])
def test_every_process_has_an_ops_listener(name):
    assert COMPOSE["services"][name]["environment"]["GPUFLEET_OPS_LISTEN"].endswith(":9100")


def _url_user(url: str) -> str:
    m = re.match(r"postgresql://([^:@/]+)(?::[^@]*)?@", url)
    assert m, url
    return m.group(1)


def test_only_the_migrate_job_holds_the_administrator_and_the_role_passwords():
    services = COMPOSE["services"]
    migrate_env = services["migrate"]["environment"]
    assert (
        _url_user(migrate_env["GPUFLEET_ADMIN_DATABASE_URL"])
        == services["postgres"]["environment"]["POSTGRES_USER"]
    )
    for name, spec in services.items():
        if name in ("migrate", "postgres"):
            continue
        env = spec.get("environment") or {}
        assert "GPUFLEET_ADMIN_DATABASE_URL" not in env, name
        assert not [k for k in env if k.endswith("_DB_PASSWORD")], f"{name} holds a role password variable"
        assert not any("POSTGRES_PASSWORD" in str(v) for v in env.values()), (
            f"{name} holds the admin password"
        )


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_each_service_connects_as_its_dml_only_role_never_the_owner_or_the_administrator(name):
    url = COMPOSE["services"][name]["environment"][f"GPUFLEET_{name.upper()}_DATABASE_URL"]
    user = _url_user(url)
    assert user == f"gpufleet_{name}"  # not gpufleet_<name>_owner, not postgres
    assert "POSTGRES_PASSWORD" not in url
    others = [
        COMPOSE["services"][o]["environment"][f"GPUFLEET_{o.upper()}_DATABASE_URL"]
        for o in GRPC_SERVICES
        if o != name
    ]
    password = url.split(":", 2)[2].split("@")[0]
    assert all(password not in other for other in others), f"{name} shares its password variable"


def test_postgres_asks_every_connection_for_a_password():
    env = COMPOSE["services"]["postgres"]["environment"]
    assert env.get("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256") == "scram-sha-256"  # never trust
    args = env["POSTGRES_INITDB_ARGS"].split()
    assert "--auth-local=scram-sha-256" in args and "--auth-host=scram-sha-256" in args


def test_the_deploy_notes_name_both_roles_of_a_service():
    notes = (ROOT / "deploy" / "README.md").read_text()
    assert "gpufleet_<service>_owner" in notes and "`gpufleet_<service>`" in notes
    assert "BYPASSRLS" in notes and "check_role" in notes
