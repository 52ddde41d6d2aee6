"""The cgroup v2 device filter in a real kernel: a process in a group fenced to one GPU's rules can open
that GPU's device node (as far as its absent driver: ENXIO) and not another's (EPERM, refused before any
driver is asked). Needs root and a cgroup2 hierarchy: the host's (a v2 or hybrid host), or one mounted
here for the test (device programs attach to a v2 group whatever controllers it has, so this runs on a
v1 host too). Skipped, saying why, where either is missing or the kernel refuses the program."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.agent.adapters import device_filter
from services.agent.adapters.cgroups import char_majors, device_rules
from services.agent.adapters.sandbox import mount

from .conftest import OPEN_DEVICES

pytestmark = pytest.mark.integration

# Joins the group given first, then tries each device node after it (as the sandbox suite's probe).
PROBE = (
    'import os, sys\nwith open(os.path.join(sys.argv.pop(1), "cgroup.procs"), "w") as f:\n    f.write("0")\n'
    + OPEN_DEVICES
)
NODES = ("nvidia0", "nvidia1", "nvidiactl", "uvm", "null")  # the device_nodes fixture's


def _host_cgroup2() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


@pytest.fixture
def cgroup2() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("device filters need root (CAP_BPF and CAP_SYS_ADMIN)")
    if problem := device_filter.problem():
        pytest.skip(problem)
    root, mounted = _host_cgroup2(), None
    if root is None:
        mounted = Path(tempfile.mkdtemp(prefix="gpufleet-it-cgroup2-"))
        try:
            mount("none", str(mounted), "cgroup2", 0)
        except OSError as exc:
            mounted.rmdir()
            pytest.skip(f"no cgroup2 hierarchy here and none can be mounted: {exc}")
        root = mounted
    try:
        yield root
    finally:
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=False)
            with contextlib.suppress(OSError):
                mounted.rmdir()


def probe(group: Path, nodes: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(group), *(str(nodes / n) for n in NODES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {
        Path(path).name: verdict
        for path, verdict in (line.rsplit(" ", 1) for line in done.stdout.splitlines())
    }


@contextlib.contextmanager
def group_in(root: Path) -> Iterator[Path]:
    group = root / f"gpufleet-it-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a group in {root}: {exc}")
    try:
        yield group
    finally:
        os.rmdir(group)  # the probe has exited: the group is empty


def test_a_fenced_group_opens_its_own_gpu_and_not_another(cgroup2, device_nodes):
    rules = device_rules([0], char_majors(Path("/proc/devices").read_text()))
    with group_in(cgroup2) as group:
        device_filter.attach(group, rules)
        assert device_filter.attached(group) == 1
        verdicts = probe(group, device_nodes)
    # ENXIO: the filter let the open through to a driver that is not there (no GPU on this host).
    assert verdicts == {
        "nvidia0": "ENXIO",
        "nvidia1": "EPERM",
        "nvidiactl": "ENXIO",
        "uvm": "ENXIO",
        "null": "opened",
    }


def test_without_a_filter_the_same_process_opens_every_gpu(cgroup2, device_nodes):
    with group_in(cgroup2) as group:
        assert device_filter.attached(group) == 0
        assert probe(group, device_nodes)["nvidia1"] == errno.errorcode[errno.ENXIO]


def test_a_group_fenced_to_nothing_opens_no_device(cgroup2, device_nodes):
    with group_in(cgroup2) as group:
        device_filter.attach(group, [])
        assert set(probe(group, device_nodes).values()) == {"EPERM"}
