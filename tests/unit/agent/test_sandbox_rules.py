"""The sandbox's pure parts: device cgroup rules, the driver's device minors, the container command line,
the private /tmp plan and the settings that choose them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.agent.adapters import containers, host, sandbox
from services.agent.adapters.cgroups import (
    DYNAMIC_CHAR_MAJORS,
    NVIDIA_MAJOR,
    CgroupHost,
    char_majors,
    device_rules,
)
from services.agent.config import AgentSettings
from services.agent.domain.model import Limits

from .test_settings import REQUIRED

PROC_DEVICES = """Character devices:
  1 mem
  5 /dev/tty
 10 misc
136 pts
195 nvidia-frontend
235 nvidia-caps
510 nvidia-uvm

Block devices:
  7 loop
259 blkext
"""

V1_MOUNTS = """\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
"""
V1_DEVICES_MOUNT = "36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n"


def test_char_majors_reads_only_the_character_part_of_proc_devices():
    assert char_majors(PROC_DEVICES) == {1, 5, 10, 136, 195, 235, 510}


def test_a_jobs_device_rules_allow_its_own_gpus_and_the_shared_nodes_only():
    rules = device_rules([0, 3], char_majors(PROC_DEVICES))
    nvidia = [r for r in rules if r.startswith(f"c {NVIDIA_MAJOR}:")]
    assert nvidia == ["c 195:0 rwm", "c 195:3 rwm", "c 195:254 rwm", "c 195:255 rwm"]
    assert f"c {NVIDIA_MAJOR}:* rwm" not in rules and "c *:* rwm" not in rules and "a" not in rules
    # Every other registered character major (nvidia-uvm's and nvidia-caps' included), and the dynamic
    # ranges, where a nvidia-uvm loaded after the job's start gets its major.
    for major in (1, 5, 10, 136, 235, 510, *DYNAMIC_CHAR_MAJORS):
        assert f"c {major}:* rwm" in rules
    assert "c 203:* rwm" not in rules  # a fixed major nobody registered stays closed
    assert {"c *:* m", "b *:* rwm"} <= set(rules)


def test_a_job_without_gpus_gets_no_gpu_device_at_all():
    nvidia = [r for r in device_rules([], {1, 195}) if r.startswith("c 195:")]
    assert nvidia == ["c 195:254 rwm", "c 195:255 rwm"]


def test_the_device_controller_is_used_on_cgroup_v1_only():
    v1 = CgroupHost("gpufleet", V1_MOUNTS + V1_DEVICES_MOUNT)
    assert v1.device_control() is None
    assert v1.job("j").by_controller["devices"] == Path("/sys/fs/cgroup/devices/gpufleet/j")
    without = CgroupHost("gpufleet", V1_MOUNTS)
    assert "devices controller is not mounted" in (without.device_control() or "")
    assert "devices" not in without.job("j").by_controller


def test_cgroup_v2_fences_devices_with_a_bpf_filter_or_says_why_not(tmp_path, monkeypatch):
    from services.agent.adapters import device_filter

    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    v2 = CgroupHost("gpufleet", f"30 1 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw\n")
    assert v2.version == 2
    monkeypatch.setattr(device_filter, "problem", lambda: "cannot load a cgroup v2 device filter (BPF): no")
    assert "BPF" in (v2.device_control() or "")
    monkeypatch.setattr(device_filter, "problem", lambda: None)
    attached: list[tuple[Path, list[str]]] = []
    monkeypatch.setattr(device_filter, "attach", lambda group, rules: attached.append((group, rules)))
    assert v2.device_control() is None  # a probe group took a filter, and is gone
    assert [rules for _, rules in attached] == [["a"]] and not attached[0][0].exists()
    v2.job("j").restrict_devices(["c 1:3 rwm"])
    assert attached[1:] == [(tmp_path / "gpufleet" / "j", ["c 1:3 rwm"])]

    def refuse(group, rules):  # type: ignore[no-untyped-def]
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(device_filter, "attach", refuse)
    assert "cannot attach a device filter" in (v2.device_control() or "")


def info(uuid: str, minor: str) -> str:
    return (
        "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\n"
        f"GPU UUID: \t {uuid}\nVideo BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\n"
        f"Bus Location: \t 0000:18:00.0\nDevice Minor: \t {minor}\nGPU Excluded:\t No\n"
    )


def test_device_minors_come_from_the_drivers_information_files(tmp_path):
    for bus, uuid, minor in (("0000:18:00.0", "GPU-aaa", "2"), ("0000:2a:00.0", "GPU-bbb", "0")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(info(uuid, minor))
    (tmp_path / "0000:3b:00.0").mkdir()
    (tmp_path / "0000:3b:00.0" / "information").write_text("Model: broken\n")  # skipped, not fatal
    assert host.nvidia_minors(tmp_path) == {"GPU-aaa": 2, "GPU-bbb": 0}
    assert host.nvidia_minors(tmp_path / "absent") == {}


def test_private_tmp_binds_folders_of_the_job_or_names_one_in_tmpdir(tmp_path):
    binds, tmpdir = sandbox.private_tmp_plan(tmp_path, mounts=True)
    assert tmpdir == "/tmp"
    assert [str(tmp_path / ".tmp"), "/tmp"] in binds
    assert all(source.startswith(str(tmp_path)) for source, _ in binds)
    binds, tmpdir = sandbox.private_tmp_plan(tmp_path, mounts=False)
    assert binds == [] and tmpdir == str(tmp_path / ".tmp")
    env = sandbox.job_environment("j", [0], tmp_path, tmpdir=tmpdir)
    assert env["TMPDIR"] == tmpdir and env["HOME"] == str(tmp_path)


def docker_argv(**overrides: object) -> list[str]:
    args: dict[str, object] = {
        "job_id": "33333333-3333-3333-3333-333333333333",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "command": "python train.py && echo done",
        "gpu_uuids": ["GPU-aaa", "GPU-bbb"],
        "workdir": Path("/var/lib/gpufleet/jobs/j"),
        "env_file": Path("/state/shims/j/container.env"),
        "uid": 200123,
        "gid": 200123,
        "limits": Limits(cpus=2.5, memory_mb=4096),
        **overrides,
    }
    return containers.run_argv("docker", "/usr/bin/docker", **args)  # type: ignore[arg-type]


def flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_docker_runs_the_command_with_only_its_gpus_no_network_and_its_limits():
    argv = docker_argv()
    assert argv[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert flag(argv, "--name") == ["gpufleet-33333333-3333-3333-3333-333333333333"]
    assert flag(argv, "--gpus") == ['"device=GPU-aaa,GPU-bbb"']  # docker reads the value as CSV
    assert flag(argv, "--network") == ["none"]
    assert flag(argv, "--user") == ["200123:200123"]
    assert flag(argv, "--memory") == ["4096m"] and flag(argv, "--memory-swap") == ["4096m"]
    assert flag(argv, "--cpus") == ["2.5"]
    assert flag(argv, "--cap-drop") == ["ALL"] and flag(argv, "--security-opt") == ["no-new-privileges"]
    assert flag(argv, "--env-file") == ["/state/shims/j/container.env"]
    assert flag(argv, "--volume") == ["/var/lib/gpufleet/jobs/j:/job"] and flag(argv, "--workdir") == ["/job"]
    assert "--init" in argv and "--privileged" not in argv and "-e" not in argv
    # The command last, as one argument to the image's /bin/sh; nothing after it.
    assert argv[-5:] == [
        "--entrypoint",
        "/bin/sh",
        "nvcr.io/nvidia/pytorch:24.05-py3",
        "-c",
        "python train.py && echo done",
    ]


def test_podman_names_each_gpu_as_a_cdi_device():
    argv = containers.run_argv(
        "podman",
        "/usr/bin/podman",
        job_id="j",
        image="docker.io/library/busybox",
        command="true",
        gpu_uuids=["GPU-aaa", "GPU-bbb"],
        workdir=Path("/w"),
        env_file=Path("/e"),
        uid=None,
        gid=None,
        limits=None,
        network="none",
    )
    assert flag(argv, "--device") == ["nvidia.com/gpu=GPU-aaa", "nvidia.com/gpu=GPU-bbb"]
    assert "--gpus" not in argv and "--user" not in argv and "--memory" not in argv
    assert containers.remove_argv("podman", "/usr/bin/podman", "j") == [
        "/usr/bin/podman",
        "rm",
        "--force",
        "--time",
        "0",
        "gpufleet-j",
    ]
    assert containers.remove_argv("docker", "/d", "j") == ["/d", "rm", "--force", "gpufleet-j"]


def test_a_job_without_gpus_gets_no_gpu_flag_and_a_configured_network():
    argv = docker_argv(gpu_uuids=[], network="bridge", limits=None)
    assert "--gpus" not in argv and flag(argv, "--network") == ["bridge"]


@pytest.mark.parametrize("image", ["--privileged", "alpine --rm", "", "a;b", "library/UPPER", "x" * 600])
def test_an_image_that_is_not_one_reference_is_refused(image):
    with pytest.raises(ValueError, match="not an image reference"):
        docker_argv(image=image)


def test_the_containers_environment_numbers_its_gpus_from_zero_and_lives_in_an_env_file(tmp_path):
    env = sandbox.job_environment("j", [3, 5], tmp_path, submitter_env={"SEED": "7 8"})
    inside = containers.container_environment(env, 2)
    assert inside["CUDA_VISIBLE_DEVICES"] == "0,1" and inside["HOME"] == "/job" and inside["TMPDIR"] == "/tmp"
    text = containers.env_file_text(inside)
    assert "SEED=7 8\n" in text and "GPUFLEET_JOB_ID=j\n" in text
    with pytest.raises(ValueError, match="line break"):
        containers.env_file_text({"KEY": "one\ntwo"})


def test_the_clients_environment_is_the_agents_runtime_settings_not_the_jobs():
    env = containers.client_environment(
        {"DOCKER_HOST": "unix:///run/docker.sock", "GPUFLEET_AGENT_TOKEN": "s", "HOME": "/root"}, "/bin"
    )
    assert env == {"DOCKER_HOST": "unix:///run/docker.sock", "HOME": "/root", "PATH": "/bin"}


def test_container_runtime_setting(monkeypatch):
    for key in [k for k in os.environ if k.startswith("GPUFLEET_")]:
        monkeypatch.delenv(key)
    for key, value in {**REQUIRED, "GPUFLEET_AGENT_GPU_BACKEND": "simulated"}.items():
        monkeypatch.setenv(key, value)
    assert AgentSettings().agent_container_runtime is None
    for raw, expected in (("", None), ("none", None), ("docker", "docker"), ("podman", "podman")):
        monkeypatch.setenv("GPUFLEET_AGENT_CONTAINER_RUNTIME", raw)
        assert AgentSettings().agent_container_runtime == expected
    assert AgentSettings().agent_container_network == "none"
    monkeypatch.setenv("GPUFLEET_AGENT_CONTAINER_RUNTIME", "lxc")
    with pytest.raises(ValidationError):
        AgentSettings()
    monkeypatch.setenv("GPUFLEET_AGENT_CONTAINER_RUNTIME", "docker")
    monkeypatch.setenv("GPUFLEET_AGENT_CONTAINER_NETWORK", "--privileged")
    with pytest.raises(ValidationError):
        AgentSettings()
