from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.agent.config import AgentSettings, GpuBackendSettings

REQUIRED = {
    "GPUFLEET_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "GPUFLEET_FLEET_GRPC_TARGET": "127.0.0.1:15052",
    "GPUFLEET_SCHEDULER_GRPC_TARGET": "127.0.0.1:15053",
}


@pytest.fixture
def env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("GPUFLEET_"):
            monkeypatch.delenv(key)
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_missing_backend_is_an_error(env):
    with pytest.raises(ValidationError) as err:
        AgentSettings()
    assert [e["loc"] for e in err.value.errors()] == [("agent_gpu_backend",)]


def test_probe_settings_also_require_the_backend(env):
    with pytest.raises(ValidationError):
        GpuBackendSettings()


def test_unknown_backend_is_an_error(env):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "cuda")
    with pytest.raises(ValidationError, match="nvml"):
        AgentSettings()


def test_defaults(env):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "simulated")
    s = AgentSettings()
    assert (s.agent_sim_gpu_count, s.agent_sim_gpu_model, s.agent_sim_gpu_memory_mb) == (
        2,
        "NVIDIA A100-SXM4-80GB",
        81920,
    )
    assert (
        s.agent_poll_seconds,
        s.agent_metrics_interval_seconds,
        s.agent_output_tail_bytes,
        s.agent_kill_grace_seconds,
    ) == (0.5, 5.0, 4096, 10.0)
    assert s.agent_join_token is None  # what the node is comes from its join token, not from settings
    assert s.agent_hostname


def test_a_blank_join_token_is_unset_and_a_set_one_is_secret(env):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "nvml")
    env.setenv("GPUFLEET_AGENT_JOIN_TOKEN", " ")
    assert AgentSettings().agent_join_token is None
    env.setenv("GPUFLEET_AGENT_JOIN_TOKEN", "gpfj_x")
    settings = AgentSettings()
    assert settings.agent_join_token is not None and "gpfj_x" not in repr(settings)


def test_nonsense_intervals_are_refused(env):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "simulated")
    env.setenv("GPUFLEET_AGENT_POLL_SECONDS", "0")
    with pytest.raises(ValidationError):
        AgentSettings()


def test_labels_parse_and_capacity_overrides(env):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "simulated")
    assert AgentSettings().labels == {} and AgentSettings().agent_cpu_cores is None
    env.setenv("GPUFLEET_AGENT_LABELS", " nvlink_domain=a, rack=r1 ,")
    env.setenv("GPUFLEET_AGENT_CPU_CORES", "96")
    env.setenv("GPUFLEET_AGENT_RAM_MB", "1048576")
    s = AgentSettings()
    assert s.labels == {"nvlink_domain": "a", "rack": "r1"}
    assert (s.agent_cpu_cores, s.agent_ram_mb) == (96, 1048576)


@pytest.mark.parametrize(
    "labels",
    [
        "rack",
        "rack=r1,rack=r2",
        "=x",
        "rack=has space",
        "bad key=x",
        "gpufleet.io/container-runtime=docker",  # the agent's own word, from the runtime that answered
        ",".join(f"l{i}=v" for i in range(32)),  # 31 at most: room for the agent's own
    ],
)
def test_malformed_labels_are_refused(env, labels):
    env.setenv("GPUFLEET_AGENT_GPU_BACKEND", "simulated")
    env.setenv("GPUFLEET_AGENT_LABELS", labels)
    with pytest.raises(ValidationError):
        AgentSettings()


def test_host_capacity_is_read_from_the_host(tmp_path):
    from services.agent.adapters import host

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:  1 kB\n")
    assert host.ram_mb(meminfo) == 16000
    assert host.ram_mb(tmp_path / "missing") == 0
    assert host.cpu_cores() >= 1
