"""One cgroup per job, so that every process a job starts is found, limited and killed with it.

A job cannot leave its cgroup (moving a process needs write access to another group's ``cgroup.procs``,
which only root has), so ``setsid``, double forks and daemons are all still in it. Killing freezes the
group first: a frozen process cannot fork, so one pass of SIGKILL over a frozen group reaches all of it.

cgroup v1 (what these hosts have) keeps one hierarchy per controller: the job gets the same relative
path, ``<parent>/<job id>``, under each of cpu, cpuacct, memory, pids and freezer. cgroup v2 has one
tree; the controllers are enabled on the parent and ``cgroup.kill`` (Linux 5.14+) kills in one write.

Devices: a job's group allows only what :func:`device_rules` lists (the job's own ``/dev/nvidia<N>``,
never another GPU's, ``nvidiactl``, ``nvidia-modeset`` and every other character device the host
registers), so ``open`` of another GPU's node fails with EPERM whatever ``CUDA_VISIBLE_DEVICES`` says.
cgroup v1 takes the rules as text (its ``devices`` controller, where mounted); cgroup v2 has no such
controller and asks a BPF program attached to the group instead, which :mod:`.device_filter` builds
from the same rules. Where neither works (no devices controller, a kernel that refuses the program),
:meth:`CgroupHost.device_control` says why, and the agent logs that jobs' GPUs are not fenced.
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
V1_DEVICES = "devices"  # optional: without it the job's group works, only GPUs are not fenced
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
                if option in V1_CONTROLLERS or option == V1_DEVICES:
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
            controllers = (*V1_CONTROLLERS, V1_DEVICES) if V1_DEVICES in self.v1 else V1_CONTROLLERS
            return JobCgroup(1, {c: self.v1[c] / self.parent / job_id for c in controllers})
        raise OSError(errno.ENOTSUP, "no usable cgroup hierarchy on this host")

    def device_control(self) -> str | None:
        """None when a job's group can fence its devices (cgroup v1 ``devices``, or on v2 a BPF device
        filter this kernel loads), else why not."""
        if self.version == 2:
            from ..domain.model import Limits
            from . import device_filter  # only the agent asks, once; supervisors never import it

            if problem := device_filter.problem():
                return problem
            probe = self.job(f".probe-devices-{os.getpid()}")
            try:
                probe.create(Limits())
                probe.restrict_devices(["a"])  # loaded above; attaching may still be refused
            except OSError as exc:
                return f"cannot attach a device filter to a job's cgroup ({exc})"
            finally:
                with contextlib.suppress(OSError):
                    probe.remove()
            return None
        if self.version == 0:
            return "no job cgroups on this host"
        if V1_DEVICES not in self.v1:
            return "the cgroup v1 devices controller is not mounted"
        return None

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
    __slots__ = ("_dirs", "_procs", "by_controller", "version")

    def __init__(self, version: int, by_controller: dict[str, Path]) -> None:
        self.version = version
        self.by_controller = by_controller  # v2: the same folder for every controller
        # Worked out once: the supervisor reads every cgroup.procs several times per job, and plain
        # strings with os calls cost a fraction of pathlib's joins and text-mode files there.
        self._dirs = sorted(set(by_controller.values()))
        self._procs = [os.path.join(d, "cgroup.procs") for d in self._dirs]

    def __repr__(self) -> str:
        return f"JobCgroup({self.version}, {self.by_controller})"

    @property
    def dirs(self) -> list[Path]:
        """Each folder once (co-mounted v1 controllers share one)."""
        return list(self._dirs)

    def _file(self, name: str) -> Path:
        if self.version == 2:
            return self._dirs[0] / name
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

    def restrict_devices(self, rules: Iterable[str]) -> None:
        """Allow the group's processes only ``rules`` (``"c 195:0 rwm"``, see :func:`device_rules`):
        cgroup v1 denies every device, then allows each rule; v2 attaches the rules as a BPF device
        filter. Call it before any process is in the group. Raises OSError where the group cannot
        (the caller knows from device_control)."""
        if self.version == 2:
            from . import device_filter

            device_filter.attach(self._dirs[0], list(rules))
            return
        if self.version != 1 or V1_DEVICES not in self.by_controller:
            raise OSError(errno.ENOTSUP, "this job's cgroup has no v1 devices controller")
        folder = self.by_controller[V1_DEVICES]
        (folder / "devices.deny").write_text("a")
        fd = os.open(folder / "devices.allow", os.O_WRONLY)
        try:
            for rule in rules:  # the kernel parses one rule per write
                os.write(fd, rule.encode())
        finally:
            os.close(fd)

    def device_list(self) -> list[str]:
        """What the group allows (v1 ``devices.list``; ``["a *:* rwm"]``: everything)."""
        if V1_DEVICES not in self.by_controller:
            return []
        return (self.by_controller[V1_DEVICES] / "devices.list").read_text().split("\n")[:-1]

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs)

    def attach(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into the group, every hierarchy."""
        data = str(pid).encode()
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self._procs:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in _read(procs).split())
        return sorted(found)

    def signal(self, sig: signal.Signals) -> None:
        _signal_all(self.pids(), sig)

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every process of the group; True when it is empty."""
        deadline = time.monotonic() + timeout
        left = self.pids()
        while left and time.monotonic() < deadline:
            if self.version == 2 and (self._dirs[0] / "cgroup.kill").exists():
                with contextlib.suppress(FileNotFoundError):
                    (self._dirs[0] / "cgroup.kill").write_text("1")
            else:
                self._freeze(True)
                _signal_all(self.pids(), signal.SIGKILL)
                self._freeze(False)  # killed processes die only once thawed
            time.sleep(0.02)
            left = self.pids()
        return not left

    def _freeze(self, frozen: bool) -> None:
        try:
            if self.version == 2:
                (self._dirs[0] / "cgroup.freeze").write_text("1" if frozen else "0")
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
        for d in self._dirs:
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


def _read(path: str) -> str:
    """A small kernel file's whole text (cgroup files are read in one go; no text-mode layer)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


NVIDIA_MAJOR = 195  # /dev/nvidia<N> is 195:N; nvidiactl 195:255, nvidia-modeset 195:254
NVIDIA_SHARED_MINORS = (254, 255)
# Where the kernel hands out character majors to drivers that ask for any (Documentation/admin-guide/
# devices.txt: 234-254 and 384-511).
DYNAMIC_CHAR_MAJORS = (*range(234, 255), *range(384, 512))


def char_majors(proc_devices: str) -> set[int]:
    """The character device majors the host registers (the "Character devices:" part of /proc/devices)."""
    majors: set[int] = set()
    in_char = False
    for line in proc_devices.splitlines():
        if line.endswith("devices:"):
            in_char = line.startswith("Character")
            continue
        parts = line.split()
        if in_char and parts and parts[0].isdigit():
            majors.add(int(parts[0]))
    return majors


def device_rules(own_minors: Iterable[int], majors: Iterable[int]) -> list[str]:
    """The devices a job's group allows: every block device and every registered character major (file
    permissions still apply), creating nodes (``m``), and of the NVIDIA major only ``nvidiactl``,
    ``nvidia-modeset`` and the job's own GPUs. ``nvidia-uvm`` and ``nvidia-caps`` have majors of their
    own from the kernel's dynamic ranges, all of which stay allowed (so a ``nvidia-uvm`` loaded only
    after the job started still works); a driver with a fixed major loaded later is refused."""
    rules = ["c *:* m", "b *:* rwm"]
    allowed = set(majors) | set(DYNAMIC_CHAR_MAJORS)
    rules += [f"c {m}:* rwm" for m in sorted(allowed) if m != NVIDIA_MAJOR]
    minors = set(NVIDIA_SHARED_MINORS) | {int(n) for n in own_minors}
    rules += [f"c {NVIDIA_MAJOR}:{n} rwm" for n in sorted(minors)]
    return rules


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
