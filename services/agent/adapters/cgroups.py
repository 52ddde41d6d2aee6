"""One cgroup per job, so that every process a job starts is found, limited and killed with it.

A job cannot leave its cgroup (moving a process needs write access to another group's ``cgroup.procs``,
which only root has), so ``setsid``, double forks and daemons are all still in it. Killing freezes the
group first: a frozen process cannot fork, so one pass of SIGKILL over a frozen group reaches all of it.

cgroup v1 (what these hosts have) keeps one hierarchy per controller: the job gets the same relative
path, ``<parent>/<job id>``, under each of cpu, cpuacct, memory, pids and freezer. cgroup v2 has one
tree; the controllers are enabled on the parent and ``cgroup.kill`` (Linux 5.14+) kills in one write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..domain.model import Limits

__all__ = ["CgroupHost", "JobCgroup", "Limits"]


def __getattr__(name: str) -> Any:
    # Lazy: the per-job supervisor imports this module at every job start and never needs Limits
    # (whose module costs more to import than the supervisor's own code).
    if name == "Limits":
        from ..domain.model import Limits

        return Limits
    raise AttributeError(name)


V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer")
V2_CONTROLLERS = frozenset({"cpu", "memory", "pids"})
CFS_PERIOD_US = 100_000


def _v2_controllers(mount_point: Path) -> set[str]:
    try:
        return set((mount_point / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _cgroup_mounts(mountinfo: str) -> tuple[Path | None, dict[str, Path]]:
    """(the v2 mount when it is the whole tree, {v1 controller: its mount point})."""
    v2: Path | None = None
    v1: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_point, fstype, options = Path(fields[4]), tail[0], tail[2].split(",")
        if fstype == "cgroup2" and V2_CONTROLLERS <= _v2_controllers(mount_point):
            v2 = mount_point  # a hybrid host's "unified" tree holds none of them (or only hugetlb)
        elif fstype == "cgroup":
            for option in options:
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    return v2, v1


class CgroupHost:
    """Where this host keeps its cgroups, and whether the agent may create them."""

    def __init__(self, parent: str = "gpufleet", mountinfo: str | None = None) -> None:
        if mountinfo is None:
            try:
                mountinfo = Path("/proc/self/mountinfo").read_text()
            except OSError:
                mountinfo = ""
        self.parent = parent.strip("/")
        self.v2, self.v1 = _cgroup_mounts(mountinfo)
        self.version = 2 if self.v2 else 1 if set(V1_CONTROLLERS) <= set(self.v1) else 0

    def job(self, job_id: str) -> JobCgroup:
        if self.version == 2:
            assert self.v2 is not None
            path = self.v2 / self.parent / job_id
            return JobCgroup(2, {c: path for c in V1_CONTROLLERS})
        if self.version == 1:
            return JobCgroup(1, {c: self.v1[c] / self.parent / job_id for c in V1_CONTROLLERS})
        raise OSError(errno.ENOTSUP, "no usable cgroup hierarchy on this host")

    def usable(self) -> str | None:
        """None when job cgroups can be created here, else why not (the agent logs it once)."""
        if self.version == 0:
            return "no cgroup v2 tree with controllers and no v1 cpu, cpuacct, memory, pids and freezer"
        from ..domain.model import Limits

        probe = self.job(f".probe-{os.getpid()}")
        try:
            probe.create(Limits())
        except OSError as exc:
            return f"cannot create cgroups ({exc})"
        probe.remove()
        return None


class JobCgroup:
    # A plain class, not a dataclass: importing dataclasses (inspect, ast) would double the cost of
    # importing this module in the per-job supervisor.
    __slots__ = ("by_controller", "version")

    def __init__(self, version: int, by_controller: dict[str, Path]) -> None:
        self.version = version
        self.by_controller = by_controller  # v2: the same folder for every controller

    def __repr__(self) -> str:
        return f"JobCgroup({self.version}, {self.by_controller})"

    @property
    def dirs(self) -> list[Path]:
        """Each folder once (co-mounted v1 controllers share one)."""
        return sorted(set(self.by_controller.values()))

    def _file(self, name: str) -> Path:
        if self.version == 2:
            return self.dirs[0] / name
        return self.by_controller[name.split(".")[0]] / name

    def create(self, limits: Limits) -> None:
        if self.version == 2:
            parent = self.dirs[0].parent
            parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):  # a controller the host does not delegate stays off
                (parent / "cgroup.subtree_control").write_text("+cpu +memory +pids")
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)
        if limits.memory_mb is not None:
            name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
            self._file(name).write_text(str(limits.memory_mb * 1024 * 1024))
        if limits.cpus is not None:
            quota = max(1000, int(limits.cpus * CFS_PERIOD_US))
            if self.version == 2:
                self._file("cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            else:
                self._file("cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                self._file("cpu.cfs_quota_us").write_text(str(quota))

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs)

    def attach(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into the group, every hierarchy."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def signal(self, sig: signal.Signals) -> None:
        _signal_all(self.pids(), sig)

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every process of the group; True when it is empty."""
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            if self.version == 2 and (self.dirs[0] / "cgroup.kill").exists():
                with contextlib.suppress(FileNotFoundError):
                    (self.dirs[0] / "cgroup.kill").write_text("1")
            else:
                self._freeze(True)
                _signal_all(self.pids(), signal.SIGKILL)
                self._freeze(False)  # killed processes die only once thawed
            time.sleep(0.02)
        return not self.pids()

    def _freeze(self, frozen: bool) -> None:
        try:
            if self.version == 2:
                (self.dirs[0] / "cgroup.freeze").write_text("1" if frozen else "0")
                return
            state = self._file("freezer.state")
            state.write_text("FROZEN" if frozen else "THAWED")
            if frozen:  # FREEZING means some task is not stopped yet: wait, briefly, for all of them
                deadline = time.monotonic() + 1.0
                while state.read_text().strip() == "FREEZING" and time.monotonic() < deadline:
                    time.sleep(0.005)
        except FileNotFoundError:
            pass

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the (empty) group; a just-emptied memory cgroup may refuse briefly (EBUSY)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
