"""Shared by the agent's integration suites: device nodes like a GPU host's, and the probe that opens them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

OPEN_DEVICES = """
import errno, os, sys
for name in sys.argv[1:]:
    try:
        os.close(os.open(name, os.O_RDWR))
        print(name, "opened")
    except OSError as exc:
        print(name, errno.errorcode[exc.errno])
"""


@pytest.fixture
def device_nodes() -> Iterator[Path]:
    """Device nodes like a GPU host's, outside /tmp (a job's /tmp is its own): 195:N for GPU N,
    nvidiactl, a dynamic major standing for nvidia-uvm, and /dev/null's 1:3."""
    folder = Path(tempfile.mkdtemp(prefix="gpufleet-it-dev-", dir="/run"))
    os.chmod(folder, 0o755)
    nodes = {
        "nvidia0": (195, 0),
        "nvidia1": (195, 1),
        "nvidiactl": (195, 255),
        "uvm": (511, 0),
        "null": (1, 3),
    }
    try:
        for name, (major, minor) in nodes.items():
            os.mknod(folder / name, 0o666 | 0o020000, os.makedev(major, minor))  # S_IFCHR
            os.chmod(folder / name, 0o666)  # file permissions allow it all: only the cgroup refuses
    except PermissionError:
        pytest.skip("cannot create device nodes here (mknod needs root)")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
