"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.contracts import kafka_acls, topics
from shared.settings import KafkaSettings

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
    assert _broker_properties()["process.roles"] == "broker,controller"  # KRaft


@pytest.mark.parametrize("name", [*GRPC_SERVICES, "gateway", "agent"])
def test_every_required_setting_is_provided(name):
    service = COMPOSE["services"][name]
    module = _module(service)
    assert module == f"services.{name}"
    env = service["environment"]
    missing = sorted(_required_env(module) - set(env))
    assert not missing, f"{name} lacks {missing} in docker-compose.yml"
    assert "healthcheck" in service or name == "agent"


# The services with an agent listener of their own (GPUFLEET_<SERVICE>_AGENT_GRPC_LISTEN).
AGENT_LISTENERS = ("fleet", "scheduler")


def _probed(name: str) -> list[str]:
    """The addresses a service's health check probes (``shared.healthcheck grpc A [B ...]``)."""
    test = COMPOSE["services"][name]["healthcheck"]["test"]
    assert test[:5] == ["CMD", "python", "-m", "shared.healthcheck", "grpc"], test
    return test[5:]


def _agent_port(name: str) -> int:
    return _port(COMPOSE["services"][name]["environment"][f"GPUFLEET_{name.upper()}_AGENT_GRPC_LISTEN"])


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_ports_agree(name):
    services = COMPOSE["services"]
    env = services[name]["environment"]
    listen = _port(env[f"GPUFLEET_{name.upper()}_GRPC_LISTEN"])
    target = env[f"GPUFLEET_{name.upper()}_GRPC_TARGET"]
    assert target == f"{name}:{listen}"
    assert _probed(name)[0] == f"127.0.0.1:{listen}"
    for other, spec in services.items():  # every caller but the agent names the same address
        value = (spec.get("environment") or {}).get(f"GPUFLEET_{name.upper()}_GRPC_TARGET")
        if other == "agent" and name in AGENT_LISTENERS:
            assert value == f"{name}:{_agent_port(name)}", f"the agent points at {value} for {name}"
        else:
            assert value in (None, target), f"{other} points at {value} for {name}"


@pytest.mark.parametrize("name", AGENT_LISTENERS)
def test_the_agent_listener_has_a_port_of_its_own_and_is_health_checked(name):
    env = COMPOSE["services"][name]["environment"]
    listen = _port(env[f"GPUFLEET_{name.upper()}_GRPC_LISTEN"])
    agent = _agent_port(name)
    tenant_ports = {
        _port(COMPOSE["services"][s]["environment"][f"GPUFLEET_{s.upper()}_GRPC_LISTEN"])
        for s in GRPC_SERVICES
    }
    assert agent != listen and agent not in tenant_ports
    assert _probed(name) == [f"127.0.0.1:{listen}", f"127.0.0.1:{agent}"]


def test_the_agent_is_told_only_the_agent_ports_and_sits_on_the_node_network_alone():
    services = COMPOSE["services"]
    agent_env = services["agent"]["environment"]
    targets = {k: v for k, v in agent_env.items() if k.endswith("_GRPC_TARGET")}
    assert targets == {
        "GPUFLEET_FLEET_GRPC_TARGET": f"fleet:{_agent_port('fleet')}",
        "GPUFLEET_SCHEDULER_GRPC_TARGET": f"scheduler:{_agent_port('scheduler')}",
    }
    # The scheduler verifies node credentials on fleet's agent listener, and monitoring asks it for the
    # nodes' record keys (signed agent records); no one else is told it.
    holders = {
        n for n, s in services.items() if "GPUFLEET_FLEET_AGENT_GRPC_TARGET" in (s.get("environment") or {})
    }
    assert holders == {"scheduler", "monitoring"}
    for holder in holders:
        assert (
            services[holder]["environment"]["GPUFLEET_FLEET_AGENT_GRPC_TARGET"]
            == f"fleet:{_agent_port('fleet')}"
        )
    # The gateway (the tenants' way in) is told only the tenant ports.
    gateway = services["gateway"]["environment"]
    agent_ports = {_agent_port(n) for n in AGENT_LISTENERS}
    assert not [v for k, v in gateway.items() if k.endswith("_GRPC_TARGET") and _port(v) in agent_ports]
    # The node network holds the agent, what it calls (fleet, the scheduler) and the broker: nothing else.
    assert "nodes" in COMPOSE["networks"]
    on_nodes = {n for n, s in services.items() if "nodes" in (s.get("networks") or [])}
    assert on_nodes == {"agent", "fleet", "scheduler", "kafka"}
    assert services["agent"]["networks"] == ["nodes"]
    for name in on_nodes - {"agent"}:  # still on the default network for everything else
        assert "default" in services[name]["networks"], name


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
        for token in ("GPUFLEET_ADMIN_TOKEN", "GPUFLEET_AGENT_TOKEN", "GPUFLEET_AGENT_JOIN_TOKEN")
    }
    assert holders["GPUFLEET_ADMIN_TOKEN"] == ["identity"]
    assert holders["GPUFLEET_AGENT_TOKEN"] == []  # no shared agent secret (docs/agent-identity.md)
    assert holders["GPUFLEET_AGENT_JOIN_TOKEN"] == ["agent"]
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


# ---------------------------------------------------------------------------------------- Kafka: SASL + ACLs
# Apache Kafka cannot run here (no Docker engine, no JVM), so its security is checked statically: the broker
# configuration deploy/kafka/broker.sh writes, the setup job's principals and ACLs (deploy/kafka/acls.sh)
# against the topic access table, and each service's SASL settings in docker-compose.yml.

KAFKA_DIR = ROOT / "deploy" / "kafka"


def _broker_properties() -> dict[str, str]:
    """The server.properties heredoc of deploy/kafka/broker.sh, as key -> value."""
    text = (KAFKA_DIR / "broker.sh").read_text()
    body = text.split('cat > "$CONF/server.properties" <<EOF\n', 1)[1].split("\nEOF\n", 1)[0]
    props = dict(line.split("=", 1) for line in body.splitlines() if line and not line.startswith("#"))
    assert len(props) == len(body.splitlines()), "a property is set twice"
    return props


def _acl_script() -> tuple[list[str], set[tuple[str, str, str, str, frozenset[str]]]]:
    """The principals (``user`` lines) and the ACLs (``acl`` lines) of deploy/kafka/acls.sh."""
    users: list[str] = []
    acls: set[tuple[str, str, str, str, frozenset[str]]] = set()
    for line in (KAFKA_DIR / "acls.sh").read_text().splitlines():
        if not line.startswith(("user ", "acl ")):
            continue
        words = shlex.split(line)
        if words[:1] == ["user"]:
            users.append(words[1])
        elif words[:1] == ["acl"]:
            opts: dict[str, list[str]] = {}
            for flag, value in zip(words[1::2], words[2::2], strict=True):
                opts.setdefault(flag, []).append(value)
            (resource,) = {"--topic", "--group"} & set(opts)
            (principal,) = opts.pop("--allow-principal")
            (name,) = opts.pop(resource)
            (pattern,) = opts.pop("--resource-pattern-type")
            ops = frozenset(opts.pop("--operation"))
            assert not opts, f"unexpected options {opts} in: {line}"
            assert len(ops) == len(line.split("--operation")) - 1, line
            acls.add((principal, resource.lstrip("-"), name, pattern, ops))
    return users, acls


def _expected_acls() -> set[tuple[str, str, str, str, frozenset[str]]]:
    """What the table says, spelled out here independently of shared/contracts/kafka_acls.py."""
    write, read = frozenset({"Write", "Describe", "Create"}), frozenset({"Read", "Describe", "Create"})
    want: set[tuple[str, str, str, str, frozenset[str]]] = set()
    for topic, access in topics.ACCESS.items():
        for p in access.producers:
            want.add((f"User:{p}", "topic", topic, "literal", write))
            if access.outbox:
                want.add((f"User:{p}", "topic", f"gpufleet.outbox-marker.{p}.v1", "literal", write))
        for c in access.consumers:
            want.add((f"User:{c}", "topic", topic, "literal", read))
            want.add((f"User:{c}", "topic", f"{topic}.dlq", "literal", write))
            want.add((f"User:{c}", "group", f"{c}.", "prefixed", frozenset({"Read"})))
            want.add(("User:operator", "group", f"{c}.", "prefixed", frozenset({"Describe"})))
        want.add(("User:operator", "topic", topic, "literal", frozenset({"Read", "Describe", "Write"})))
        want.add(("User:operator", "topic", f"{topic}.dlq", "literal", frozenset({"Read", "Describe"})))
    want.add(("User:operator", "group", "operator.", "prefixed", frozenset({"Read"})))
    return want


def test_the_broker_authenticates_every_client_and_denies_what_no_acl_allows():
    props = _broker_properties()
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"  # no ANONYMOUS, no service
    protocols = dict(kv.split(":") for kv in props["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "a listener without authentication"
    listeners = dict(kv.split("://") for kv in props["listeners"].split(","))
    assert set(listeners) == set(protocols)
    assert listeners["CONTROLLER"].startswith("localhost:"), (
        "the controller listener is reachable off the node"
    )
    assert props["listener.name.clients.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == "/var/lib/kafka/data"
    assert "kafkadata:/var/lib/kafka/data" in COMPOSE["services"]["kafka"]["volumes"]
    script = (KAFKA_DIR / "broker.sh").read_text()
    assert '--add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]"' in script


def test_compose_runs_the_broker_script_and_the_setup_job_before_any_kafka_client():
    services = COMPOSE["services"]
    assert services["kafka"]["command"] == ["/bin/sh", "/deploy/kafka/broker.sh"]
    assert "admin.properties" in services["kafka"]["healthcheck"]["test"][-1]
    setup = services["kafka-setup"]
    assert setup["command"] == ["/bin/sh", "/deploy/kafka/acls.sh"] and setup["restart"] == "no"
    assert setup["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for spec in (services["kafka"], setup):
        assert "./deploy/kafka:/deploy/kafka:ro" in spec["volumes"]

    def waits_for_setup(name: str) -> bool:
        deps = services[name].get("depends_on") or {}
        if deps.get("kafka-setup") == {"condition": "service_completed_successfully"}:
            return True
        return any(waits_for_setup(d) for d in deps if d not in ("kafka", "postgres", "migrate"))

    for name in topics.services():
        assert waits_for_setup(name), f"{name} may start before its Kafka user and ACLs exist"


def test_the_committed_acl_script_is_generated_from_the_table():
    assert (KAFKA_DIR / "acls.sh").read_text() == kafka_acls.render(), (
        "run `python -m shared.contracts.kafka_acls > deploy/kafka/acls.sh`"
    )


def test_the_acl_commands_are_exactly_what_the_topic_access_table_says():
    users, acls = _acl_script()
    assert users == [*topics.services(), "operator"]
    assert acls == _expected_acls()
    assert not [a for a in acls if "*" in a[0] or "*" in a[2]], "a wildcard ACL"
    assert not [a for a in acls if a[1] == "topic" and a[3] != "literal"], "a prefixed topic ACL"


@pytest.mark.parametrize("service", topics.services())
def test_each_service_writes_only_what_it_produces_and_reads_only_what_it_consumes(service):
    _, acls = _acl_script()
    mine = [a for a in acls if a[0] == f"User:{service}" and a[1] == "topic"]
    reads = {a[2] for a in mine if "Read" in a[4]}
    writes = {a[2] for a in mine if "Write" in a[4]}
    consumed = set(topics.consumed_by(service))
    assert reads == consumed
    allowed = {*topics.produced_by(service), *(f"{t}.dlq" for t in consumed)}
    if service in topics.outbox_services():
        allowed.add(topics.outbox_marker(service))
    assert writes == allowed
    groups = {a[2] for a in acls if a[0] == f"User:{service}" and a[1] == "group"}
    assert groups == ({f"{service}."} if consumed else set())


def test_no_tenant_reachable_principal_reads_a_topic_except_the_services_and_the_operator():
    _, acls = _acl_script()
    readers = {a[0] for a in acls if a[1] == "topic" and "Read" in a[4]}
    assert readers == {f"User:{c}" for a in topics.ACCESS.values() for c in a.consumers} | {"User:operator"}
    operator_reads = {a[2] for a in acls if a[0] == "User:operator" and "Read" in a[4] and a[1] == "topic"}
    assert operator_reads == {*topics.ACCESS, *(f"{t}.dlq" for t in topics.ACCESS)}


def _kafka_clients() -> list[str]:
    """Compose services whose settings class takes Kafka settings (each needs its own principal)."""
    found = []
    for name, spec in COMPOSE["services"].items():
        module = _module(spec)
        if module is None or not module.startswith("services."):
            continue
        config = importlib.import_module(f"{module}.config")
        if any(isinstance(o, type) and issubclass(o, KafkaSettings) for o in vars(config).values()):
            found.append(name)
    return sorted(found)


def test_every_kafka_client_in_compose_is_a_principal_of_the_table():
    assert _kafka_clients() == sorted(topics.services())


@pytest.mark.parametrize("service", topics.services())
def test_each_kafka_client_authenticates_as_itself_with_its_own_password(service):
    services = COMPOSE["services"]
    env = services[service]["environment"]
    assert env["GPUFLEET_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["GPUFLEET_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["GPUFLEET_KAFKA_SASL_USERNAME"] == service
    variable = kafka_acls.password_variable(service)
    assert env["GPUFLEET_KAFKA_SASL_PASSWORD"] == services["kafka-setup"]["environment"][variable]
    assert env["GPUFLEET_KAFKA_SASL_PASSWORD"].startswith(f"${{{variable}:-")


def test_kafka_passwords_reach_only_their_principal_and_the_setup_job():
    services = COMPOSE["services"]
    setup_env = services["kafka-setup"]["environment"]
    assert {k for k in setup_env if k.endswith("_PASSWORD")} == {
        "KAFKA_ADMIN_PASSWORD",
        *(kafka_acls.password_variable(p) for p in kafka_acls.principals()),
    }
    for name, spec in services.items():
        values = " ".join(str(v) for v in (spec.get("environment") or {}).values())
        held = {v for v in re.findall(r"\$\{(KAFKA_\w+_PASSWORD)", values)}
        if name == "kafka-setup":
            continue
        if name == "kafka":
            assert held == {"KAFKA_ADMIN_PASSWORD"}
        elif name in topics.services():
            assert held == {kafka_acls.password_variable(name)}, name
        else:
            assert not held, f"{name} holds {held}"
