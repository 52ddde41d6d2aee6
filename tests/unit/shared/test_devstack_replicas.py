"""A devstack with standby schedulers and more agents: what each process is told (no process started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.devstack import GRPC_SERVICES, Stack, settings_class

PORTS = {name: 50100 + i for i, name in enumerate((*GRPC_SERVICES, "gateway"))}


def _stack(tmp_path: Path, **kw) -> Stack:
    return Stack(tmp_path, 55999, "127.0.0.1:59999", PORTS, "a" * 24, **kw)


def test_the_default_stack_is_one_scheduler_one_agent_on_the_gpufleet_database(tmp_path):
    stack = _stack(tmp_path)
    assert stack.scheduler_names == ("scheduler",) and stack.agent_names == ("agent",)
    assert stack.env_for("gateway")["GPUFLEET_SCHEDULER_GRPC_TARGET"] == "127.0.0.1:50102"
    assert stack.env_for("scheduler")["GPUFLEET_SCHEDULER_DATABASE_URL"].endswith("/gpufleet")
    # The given ports, plus an agent listener of its own for fleet and the scheduler.
    assert {k: v for k, v in stack.ports.items() if k in PORTS} == PORTS
    assert set(stack.ports) - set(PORTS) == {"fleet-agent", "scheduler-agent"}
    assert len(set(stack.ports.values())) == len(stack.ports)


def test_standbys_listen_on_their_own_ports_and_clients_dial_every_replica(tmp_path):
    stack = _stack(tmp_path, scheduler_replicas=3, agents=2, database="gpufleet_other")
    assert stack.scheduler_names == ("scheduler", "scheduler-2", "scheduler-3")
    ports = [stack.ports[n] for n in stack.scheduler_names]
    agent_ports = [stack.ports[f"{n}-agent"] for n in stack.scheduler_names]
    assert len({*ports, *agent_ports} | set(PORTS.values())) == len(PORTS) + 2 + 3
    assert "scheduler-2" not in PORTS
    # The gateway dials every replica's tenant listener, the agents every replica's agent listener.
    target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)
    assert stack.env_for("gateway")["GPUFLEET_SCHEDULER_GRPC_TARGET"] == target
    agent_target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in agent_ports)
    assert stack.env_for("agent")["GPUFLEET_SCHEDULER_GRPC_TARGET"] == agent_target
    assert stack._agent("agent-2").env["GPUFLEET_SCHEDULER_GRPC_TARGET"] == agent_target
    replicas = [stack._replica(n) for n in stack.scheduler_names[1:]]
    listens = [r.env["GPUFLEET_SCHEDULER_GRPC_LISTEN"] for r in replicas]
    assert listens == [f"127.0.0.1:{p}" for p in ports[1:]]
    agent_listens = [r.env["GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN"] for r in replicas]
    assert agent_listens == [f"127.0.0.1:{p}" for p in agent_ports[1:]]
    first = stack.env_for("scheduler")
    assert first["GPUFLEET_SCHEDULER_GRPC_LISTEN"] == f"127.0.0.1:{ports[0]}"
    assert first["GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN"] == f"127.0.0.1:{agent_ports[0]}"
    ops = {r.env["GPUFLEET_OPS_LISTEN"] for r in replicas} | {
        stack.env_for("scheduler")["GPUFLEET_OPS_LISTEN"]
    }
    assert len(ops) == 3
    assert all(r.module == "services.scheduler" for r in replicas)
    assert all(r.env["GPUFLEET_SCHEDULER_DATABASE_URL"].endswith("/gpufleet_other") for r in replicas)


def test_each_further_agent_is_another_node_sharing_nothing_by_job_id(tmp_path, monkeypatch):
    stack = _stack(tmp_path, agents=3)
    agents = {n: stack._agent(n) for n in stack.agent_names}
    assert agents["agent"].env == stack.env_for("agent")  # the first one as ever
    for key in (
        "GPUFLEET_AGENT_HOSTNAME",
        "GPUFLEET_AGENT_STATE_DIR",
        "GPUFLEET_OPS_LISTEN",
        "GPUFLEET_AGENT_JOBS_DIR",
        "GPUFLEET_AGENT_CGROUP_PARENT",
        "GPUFLEET_AGENT_JOB_UID_FIRST",
    ):
        values = [a.env.get(key) for a in agents.values()]
        assert len(set(values)) == 3, key
    assert [a.env["GPUFLEET_AGENT_HOSTNAME"] for a in agents.values()] == [
        "devstack-node-1",
        "devstack-node-2",
        "devstack-node-3",
    ]
    for proc in agents.values():  # and each one's settings validate from exactly that
        for key in [k for k in os.environ if k.startswith("GPUFLEET_")]:
            monkeypatch.delenv(key)
        for key, value in proc.env.items():
            monkeypatch.setenv(key, value)
        settings = settings_class("agent")()
        assert settings.agent_hostname == proc.env["GPUFLEET_AGENT_HOSTNAME"]


def test_a_stack_needs_a_scheduler_and_an_agent(tmp_path):
    with pytest.raises(ValueError):
        _stack(tmp_path, scheduler_replicas=0)
    with pytest.raises(ValueError):
        _stack(tmp_path, agents=0)
