"""What this host offers jobs besides its GPUs: CPU cores and RAM (reported at registration)."""

from __future__ import annotations

import os
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def cpu_cores() -> int:
    """The CPUs this process may run on (an affinity mask or a container's cpuset narrows them)."""
    try:
        return len(os.sched_getaffinity(0)) or os.cpu_count() or 0
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def ram_mb(meminfo: Path = MEMINFO) -> int:
    """MemTotal of /proc/meminfo in MB (0: unknown)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU (PCI bus id) while the driver is loaded


def nvidia_minors(root: Path = NVIDIA_GPUS) -> dict[str, int]:
    """{GPU UUID: the minor of its /dev/nvidia<minor>} from the driver's ``information`` files (the minor is
    not always NVML's index); {} where no NVIDIA driver is loaded (the simulated backend)."""
    found: dict[str, int] = {}
    try:
        infos = sorted(root.glob("*/information"))
    except OSError:
        return found
    for info in infos:
        fields: dict[str, str] = {}
        try:
            for line in info.read_text().splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip()] = value.strip()
            found[fields["GPU UUID"]] = int(fields["Device Minor"])
        except (OSError, KeyError, ValueError):
            continue
    return found
