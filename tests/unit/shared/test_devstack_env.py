"""Each process of the devstack gets only its own settings and secrets, and they are enough to start it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shared.devstack import (
    DEFAULT_PORTS,
    GRPC_SERVICES,
    PROCESSES,
    Stack,
    settings_class,
    settings_variables,
)

ADMIN = "admin-token-0123456789abcdef"


def _stack(tmp_path: Path, **kw) -> Stack:
    ports = {name: 50100 + i for i, name in enumerate((*GRPC_SERVICES, "gateway"))}
    ops = {name: 51100 + i for i, name in enumerate(PROCESSES)}
    return Stack(tmp_path, 55999, "127.0.0.1:59999", ports, ADMIN, ops_ports=ops, **kw)


def _gpufleet(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("GPUFLEET_")}


@pytest.fixture(autouse=True)
def _parent_env(monkeypatch):
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "the-parents-own-token-must-not-leak")
    monkeypatch.setenv("PATH", "/parent/bin")


@pytest.mark.parametrize("process", PROCESSES)
def test_each_settings_class_validates_from_exactly_the_env_it_is_given(tmp_path, monkeypatch, process):
    env = _stack(tmp_path).env_for(process)
    for key in [k for k in os.environ if k.startswith("GPUFLEET_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_class(process)()  # raises if the env is not enough
    assert set(_gpufleet(env)) <= settings_variables(process)  # and nothing it does not read
    assert settings.ops_listen == f"127.0.0.1:{51100 + PROCESSES.index(process)}"


def test_only_identity_gets_the_operator_token(tmp_path):
    stack = _stack(tmp_path)
    holders = {p for p in PROCESSES if "GPUFLEET_ADMIN_TOKEN" in stack.env_for(p)}
    assert holders == {"identity"}
    assert stack.env_for("identity")["GPUFLEET_ADMIN_TOKEN"] == ADMIN  # the stack's, not the parent's


def test_no_shared_agent_token_and_each_agent_gets_only_its_own_join_token(tmp_path):
    stack = _stack(tmp_path, agents=2)
    assert not any("GPUFLEET_AGENT_TOKEN" in stack.env_for(p) for p in PROCESSES)
    assert not any("GPUFLEET_AGENT_JOIN_TOKEN" in stack.env_for(p) for p in PROCESSES)
    first, second = stack._agent("agent", "gpfj_first"), stack._agent("agent-2", "gpfj_second")
    assert first.env["GPUFLEET_AGENT_JOIN_TOKEN"] == "gpfj_first"
    assert second.env["GPUFLEET_AGENT_JOIN_TOKEN"] == "gpfj_second"
    for proc in (first, second):
        assert "GPUFLEET_ADMIN_TOKEN" not in proc.env  # the operator token never reaches an agent
    assert "GPUFLEET_AGENT_JOIN_TOKEN" not in stack._agent("agent").env  # it has its credential


def test_each_service_gets_only_its_own_database_url_and_the_agent_and_gateway_none(tmp_path):
    stack = _stack(tmp_path)
    for process in PROCESSES:
        urls = {k for k in stack.env_for(process) if k.endswith("_DATABASE_URL")}
        expected = {f"GPUFLEET_{process.upper()}_DATABASE_URL"} if process in GRPC_SERVICES else set()
        assert urls == expected, process
    assert not {k for k in stack.env_for("gateway") if k.endswith("_TOKEN")}


def test_grpc_targets_only_for_what_a_process_calls(tmp_path):
    stack = _stack(tmp_path)
    targets = {p: {k for k in stack.env_for(p) if k.endswith("_GRPC_TARGET")} for p in PROCESSES}
    assert targets["identity"] == set()
    assert targets["agent"] == {"GPUFLEET_FLEET_GRPC_TARGET", "GPUFLEET_SCHEDULER_GRPC_TARGET"}
    assert targets["gateway"] == {f"GPUFLEET_{s.upper()}_GRPC_TARGET" for s in GRPC_SERVICES}
    assert targets["billing"] == {"GPUFLEET_IDENTITY_GRPC_TARGET"}
    assert targets["scheduler"] == {
        "GPUFLEET_IDENTITY_GRPC_TARGET",
        "GPUFLEET_FLEET_GRPC_TARGET",
        "GPUFLEET_FLEET_AGENT_GRPC_TARGET",  # node credentials, verified on fleet's agent listener
    }


def test_agents_are_pointed_only_at_the_agent_listeners_and_the_gateway_only_at_the_tenant_ones(tmp_path):
    stack = _stack(tmp_path)
    agent_ports = {stack.ports["fleet-agent"], stack.ports["scheduler-agent"]}
    tenant_ports = {stack.ports[s] for s in GRPC_SERVICES}
    assert not agent_ports & tenant_ports and len(agent_ports) == 2
    fleet, scheduler = stack.env_for("fleet"), stack.env_for("scheduler")
    assert fleet["GPUFLEET_FLEET_AGENT_GRPC_LISTEN"] == stack.target("fleet-agent")
    assert fleet["GPUFLEET_FLEET_GRPC_LISTEN"] == stack.target("fleet")
    assert scheduler["GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN"] == stack.target("scheduler-agent")
    assert scheduler["GPUFLEET_SCHEDULER_GRPC_LISTEN"] == stack.target("scheduler")
    assert scheduler["GPUFLEET_FLEET_AGENT_GRPC_TARGET"] == stack.target("fleet-agent")
    assert scheduler["GPUFLEET_FLEET_GRPC_TARGET"] == stack.target("fleet")  # GPU types: FleetService
    agent = stack.env_for("agent")
    assert agent["GPUFLEET_FLEET_GRPC_TARGET"] == stack.target("fleet-agent")
    assert agent["GPUFLEET_SCHEDULER_GRPC_TARGET"] == stack.target("scheduler-agent")
    gateway = stack.env_for("gateway")
    for svc in GRPC_SERVICES:
        assert gateway[f"GPUFLEET_{svc.upper()}_GRPC_TARGET"] == stack.target(svc)
    data = stack.endpoints()
    assert data["agent_grpc"] == {
        "fleet": stack.target("fleet-agent"),
        "scheduler": stack.target("scheduler-agent"),
    }
    assert data["grpc"]["fleet"] == stack.target("fleet")


def test_the_default_ports_give_each_agent_listener_a_port_of_its_own():
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)
    assert {"fleet-agent", "scheduler-agent"} <= set(DEFAULT_PORTS)


def test_the_parents_environment_is_kept_without_its_gpufleet_variables(tmp_path):
    env = _stack(tmp_path).env_for("billing")
    assert env["PATH"] == "/parent/bin" and env["PYTHONUNBUFFERED"] == "1"
    assert "the-parents-own-token-must-not-leak" not in env.values()


def test_extra_settings_go_only_to_the_processes_that_read_them(tmp_path):
    stack = _stack(
        tmp_path, extra_env={"GPUFLEET_AGENT_KILL_GRACE_SECONDS": "2", "GPUFLEET_LOG_LEVEL": "WARNING"}
    )
    assert stack.env_for("agent")["GPUFLEET_AGENT_KILL_GRACE_SECONDS"] == "2"
    assert "GPUFLEET_AGENT_KILL_GRACE_SECONDS" not in stack.env_for("scheduler")
    assert all(stack.env_for(p)["GPUFLEET_LOG_LEVEL"] == "WARNING" for p in PROCESSES)


def test_an_extra_setting_no_process_reads_is_refused(tmp_path):
    with pytest.raises(ValueError, match="GPUFLEET_AGENT_KILL_GRACE"):
        _stack(tmp_path, extra_env={"GPUFLEET_AGENT_KILL_GRACE": "2"})


def test_endpoints_file_lists_every_address_and_no_secret(tmp_path):
    stack = _stack(tmp_path)
    path = tmp_path / "endpoints.json"
    stack.write_endpoints(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text()
    assert ADMIN not in text and "gpfj_" not in text and "postgresql://" not in text
    data = json.loads(text)
    assert data["gateway"] == "http://127.0.0.1:50106"
    assert data["grpc"]["scheduler"] == "127.0.0.1:50102"
    assert data["kafka_bootstrap"] == "127.0.0.1:59999" and data["postgres"] == "127.0.0.1:55999"
    assert set(data["processes"]) == set(PROCESSES)
    assert (
        data["processes"]["agent"]["metrics"]
        == stack.metrics_url("agent")
        == "http://127.0.0.1:51107/metrics"
    )
    assert data["processes"]["agent"]["readiness"] == "http://127.0.0.1:51107/readyz"


def test_ops_ports_are_allocated_once_and_kept(tmp_path):
    ports = {name: 50100 + i for i, name in enumerate((*GRPC_SERVICES, "gateway"))}
    stack = Stack(tmp_path, 55999, "127.0.0.1:59999", ports, ADMIN)
    first = stack.metrics_url("billing")
    assert stack.env_for("billing")["GPUFLEET_OPS_LISTEN"] == first.removeprefix("http://").removesuffix(
        "/metrics"
    )
    assert stack.metrics_url("billing") == first
    assert stack.ops_port("billing") not in ports.values()
