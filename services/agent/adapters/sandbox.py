"""What a job may see: its environment, its user, its folder, its network. The kernel calls live here.

Guarantees by mode (the README's sandbox section is written from this):

* The environment is built from an allowlist (:func:`job_environment`), never inherited from the agent.
* The agent and each job's supervisor are not dumpable (``PR_SET_DUMPABLE`` 0), so their
  ``/proc/<pid>/environ``, ``mem``, ``fd`` and ``maps`` belong to root and are unreadable to a job, even one
  running under the agent's own uid.
* Agent as root: each job runs as an ephemeral uid/gid of a configured range (no name in /etc/passwd, not
  held by another running job), no supplementary groups, no capabilities (dropped by ``setresuid``),
  ``PR_SET_NO_NEW_PRIVS`` (no setuid binary gives them back), in its own pid namespace (``ps`` shows only
  its own processes) and, with ``agent_job_network=none``, its own network namespace with only a loopback
  device (nothing on the host, the control plane's ports and 169.254.169.254 included, is reachable).
  Its folder is 0700 and its own; the jobs root is 0711 (enterable, not listable); the agent's state folder
  is 0700 root.
* Agent not root: jobs run as the agent's uid. Dumpable=0 still hides the agent's and supervisors'
  memory and environment; the job folder is 0700 but does NOT protect jobs from each other (same uid),
  nor the agent's state folder from a job; ``ps`` shows every process. The network is isolated only where
  the kernel allows unprivileged user namespaces (else the job shares the host's network, logged).
* Private temp folders: where the agent can make a mount namespace (root, or an unprivileged user
  namespace), the job's ``/tmp`` and ``/var/tmp`` are bind mounts of folders inside its own job folder
  (removed with it) and its ``/dev/shm`` a fresh tmpfs (gone with the job's last process, charged to its
  memory cgroup): no other job's or the agent's temp files are visible, and what it leaves there goes.
  Where the agent cannot, ``TMPDIR`` names a private folder inside the job folder, and the host's
  ``/tmp`` and ``/dev/shm`` stay shared (see :func:`private_tmp_plan`).
* GPUs: a device cgroup allows the job's own ``/dev/nvidia<N>`` only (cgroups.py, cgroup v1).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pwd
import socket
import struct
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..domain.model import Distributed

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Set by the agent and never by the submitter: they say which job this is, which GPUs it holds and
# where it stands among the job's nodes (the names PyTorch's launcher and torch.distributed read).
RESERVED = ("GPUFLEET_", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
RESERVED_NAMES = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}
)
# A world of one meets itself: loopback works inside the job's own network namespace too.
LOOPBACK = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500  # torch.distributed's own default, for a scheduler that names none

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 0x40000
MS_BIND = 0x1000
# The job's private temp folders, inside its job folder: (name there, where the job sees it).
PRIVATE_TMP = ((".tmp", "/tmp"), (".var-tmp", "/var/tmp"))
SHM = "/dev/shm"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

# The process's own symbols, libc's among them: no ctypes.util.find_library, which imports subprocess
# and may run ldconfig, at every supervisor's start.
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def make_undumpable() -> None:
    """Make this process's memory and /proc entries root-only (the agent and every supervisor call it)."""
    prctl(PR_SET_DUMPABLE, 0)


def job_environment(
    job_id: str,
    gpu_indices: Sequence[int],
    workdir: Path,
    lang: str = "C.UTF-8",
    submitter_env: Mapping[str, str] | None = None,
    distributed: Distributed | None = None,
    tmpdir: str | None = None,
) -> dict[str, str]:
    """The whole environment of a job: the allowlist, plus what its submitter set (not the agent's).
    ``tmpdir``: its ``TMPDIR`` (``/tmp`` when that is private to it), else its folder."""
    from ..domain.model import Distributed  # the agent's side only: the supervisor never imports it

    env = {
        k: v
        for k, v in (submitter_env or {}).items()
        if not k.startswith(RESERVED) and k not in RESERVED_NAMES and "=" not in k and "\0" not in k + v
    }
    env.setdefault("PATH", SAFE_PATH)
    env["HOME"] = str(workdir)
    env["TMPDIR"] = tmpdir or str(workdir)
    env.setdefault("LANG", lang)
    env.setdefault("LC_ALL", lang)
    env["GPUFLEET_JOB_ID"] = job_id
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_indices)
    # CUDA numbers devices fastest-first by default; NVML (and so fleet's indices) by PCI bus id.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env.update(distributed_environment(distributed or Distributed()))
    return env


def distributed_environment(d: Distributed) -> dict[str, str]:
    """What distributed training reads: gpufleet's names plus torch.distributed's ``env://`` ones. One
    process per node (``LOCAL_RANK`` 0): a job that starts one per GPU launches them itself (torchrun)."""
    master = d.master_addr if d.world_size > 1 and d.master_addr else LOOPBACK
    return {
        "GPUFLEET_RANK": str(d.rank),
        "GPUFLEET_WORLD_SIZE": str(d.world_size),
        "GPUFLEET_NODE_NAMES": ",".join(d.node_names),
        "MASTER_ADDR": master,
        "MASTER_PORT": str(d.master_port or DEFAULT_MASTER_PORT),
        "RANK": str(d.rank),
        "WORLD_SIZE": str(d.world_size),
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
    }


def default_jobs_root(is_root: bool) -> Path:
    """Outside the agent's state folder: a system folder as root, the user's runtime folder otherwise."""
    if is_root:
        return Path("/var/lib/gpufleet/jobs")
    import tempfile  # the agent's side only: the supervisor starts faster without it

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path(tempfile.gettempdir())
    return base / f"gpufleet-jobs-{os.getuid()}"


def prepare_jobs_root(root: Path, is_root: bool) -> None:
    """Create the jobs root: 0711 as root (each job may enter its own folder but list none), else 0700.

    Raises OSError when a job uid could not reach its folder (a parent not searchable by others)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711 if is_root else 0o700)
    if is_root:
        for parent in root.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise OSError(
                    errno.EACCES, f"{parent} is not searchable by other users: jobs cannot reach {root}"
                )


class UidPool:
    """Ephemeral job uids from ``[first, last]``: never a uid with a passwd entry, never one in use."""

    def __init__(self, first: int, last: int) -> None:
        if not 0 < first <= last:
            raise ValueError(f"bad job uid range {first}-{last}")
        self.first, self.last = first, last
        self.held: set[int] = set()

    def hold(self, uid: int) -> None:
        self.held.add(uid)

    def release(self, uid: int) -> None:
        self.held.discard(uid)

    def take(self, also_busy: Collection[int] = ()) -> int:
        # Imported here, on the agent's side only: the supervisor (which imports this module) would
        # otherwise reseed random's generator after every fork, its own and its job's, for nothing.
        import random

        # Random, not lowest-first: a file a job left in a world-writable place (/tmp, /dev/shm) is
        # then unlikely to be met by the next holder of the same uid.
        for _ in range(1000):
            uid = random.randint(self.first, self.last)
            if uid in self.held or uid in also_busy or _has_passwd_entry(uid):
                continue
            self.held.add(uid)
            return uid
        raise OSError(errno.EAGAIN, f"no free job uid in {self.first}-{self.last}")


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def uids_running() -> set[int]:
    """Real uids of every process now (a uid a previous agent's job still runs under is busy)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    found.add(int(line.split()[1]))
                    break
        except OSError:
            continue
    return found


# -- inside the job's first process, before exec (see shim.py) ----------------------------------------


def private_tmp_plan(workdir: Path, mounts: bool) -> tuple[list[list[str]], str]:
    """(bind mounts [[folder in the job folder, /tmp], …] or [] when the agent cannot mount, TMPDIR)."""
    if not mounts:
        return [], str(workdir / PRIVATE_TMP[0][0])
    binds = [[str(workdir / name), target] for name, target in PRIVATE_TMP if Path(target).is_dir()]
    return binds, "/tmp"


def make_private_tmp(workdir: Path, uid: int | None) -> None:
    """Create the job's temp folders in its folder (sticky and world-writable as /tmp is: only the
    job's own mount namespace shows them there)."""
    for name, _target in PRIVATE_TMP:
        folder = workdir / name
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o1777)
        if uid is not None:
            os.chown(folder, uid, uid)


def enter_namespaces(
    isolate_pids: bool,
    isolate_network: bool,
    user_namespace: bool,
    private_tmp: Sequence[Sequence[str]] = (),
    workdir: str | None = None,
) -> None:
    """New mount (+ fresh /proc) and network namespaces for the caller. ``isolate_pids``: the caller is
    already pid 1 of a new pid namespace (its parent unshared it). ``user_namespace``: not root, so the
    namespaces come with a user namespace mapping the caller's own uid to itself. ``private_tmp``: bind
    mounts ``[[source, target], …]`` for the job's temp folders (a mount namespace), plus a fresh
    tmpfs on /dev/shm; ``workdir``: the job's folder, kept reachable at its path."""
    uid, gid = os.getuid(), os.getgid()
    new_mounts = isolate_pids or bool(private_tmp)
    flags = (CLONE_NEWNS if new_mounts else 0) | (CLONE_NEWNET if isolate_network else 0)
    if user_namespace:
        flags |= CLONE_NEWUSER
    if not flags:
        return
    if user_namespace:
        # Forked from the non-dumpable supervisor, whose /proc/self files are therefore root's: this
        # process could not write its own uid_map. It holds nothing but the job's own spec (the
        # supervisor starts with an empty environment), and exec makes it dumpable anyway.
        prctl(PR_SET_DUMPABLE, 1)
    unshare(flags)
    if user_namespace:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if new_mounts:
        mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host
    if isolate_pids:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if private_tmp:
        mount_private_tmp(private_tmp, workdir)
    if isolate_network:
        loopback_up()


def mount_private_tmp(binds: Sequence[Sequence[str]], workdir: str | None = None) -> None:
    """Inside the job's mount namespace: its own /tmp, /var/tmp (bind mounts) and /dev/shm (tmpfs).

    The sources are opened first and mounted through their descriptors: a jobs root inside /tmp (a
    laptop's agent) is hidden by the first mount. The job's folder is then mounted back at its own
    path, so ``HOME`` still names it."""
    fds = [os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for source, _target in binds]
    home = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if workdir else -1
    try:
        for fd, (_source, target) in zip(fds, binds, strict=True):
            mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        if Path(SHM).is_dir():
            mount("tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        if workdir and not _same_folder(workdir, home):
            for folder in [*reversed(Path(workdir).parents), Path(workdir)]:
                if not folder.exists():  # enterable, not listable, as the jobs root is
                    folder.mkdir(mode=0o711)
                    os.chmod(folder, 0o711)
            mount(f"/proc/self/fd/{home}", workdir, None, MS_BIND)
    finally:
        for fd in [*fds, home]:
            if fd >= 0:
                os.close(fd)


def _same_folder(path: str, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Become the job's uid/gid for good: no groups, no capabilities, no way back through setuid."""
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # from root to non-root: every capability is cleared
    prctl(PR_SET_NO_NEW_PRIVS, 1)
