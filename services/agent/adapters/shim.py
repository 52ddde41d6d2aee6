"""The per-job supervisor: ``python -m services.agent.adapters.shim <control folder>``.

Like Slurm's slurmstepd, one small process per job sits between the agent and the job, so the job does
not depend on the agent's life: the agent can crash, restart and take the job back. The shim runs in a
session of its own, outside the job's cgroup, as a child subreaper (every orphan of the job is
reparented to it, never to init, so "no child left" means "no process of the job left"):

1. reads ``spec.json`` (written by the agent), and forks the job's first process, which joins the job's
   cgroup, enters its namespaces, becomes the job's uid and execs ``/bin/sh -c <command>`` in the job's
   folder with stdout and stderr on ``output`` (a file the job cannot open, in a folder only root reads);
2. on SIGTERM (cancel) sends SIGTERM to every process of the job; on SIGUSR1 kills all of them;
3. when the command's process ends, kills what it left behind, waits until the last process of the job
   is gone, removes the job's folder and cgroup, and only then records ``exit.json`` (atomically): the
   job is finished, and its GPUs free, when that file exists.

A job naming a container image (spec ``container``) is the runtime's client instead (``docker run``
or ``podman run``, built by containers.py) in the job's cgroup, as the agent's uid; after it ends (or
is killed) the supervisor removes the container (``rm --force``), so a cancel that outlasted its grace
still stops it.

With a pid namespace the job's first process is a tiny init (pid 1 inside): it reaps orphans, forwards
SIGTERM to every process of the namespace and tells the shim, through a pipe, how the command ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import sandbox
from .cgroups import CgroupHost, JobCgroup

SPEC, OUTPUT, EXIT, PID = "spec.json", "output", "exit.json", "shim.pid"
READY = "ready"  # exists once the shim handles SIGTERM (before, the signal would kill the shim itself)


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """``path`` holds ``data`` whole or not at all, on the disk when this returns: written aside and
    synced, renamed over, and the rename synced (the folder)."""
    tmp = os.path.join(path.parent, f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        data_bytes = json.dumps(data).encode()
        while data_bytes:
            data_bytes = data_bytes[os.write(fd, data_bytes) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_workdir(workdir: str) -> None:
    """Remove the job's folder and everything in it. The common case, a job that left nothing there
    but the private temp folders the agent made (sandbox.PRIVATE_TMP), costs three rmdirs instead of
    rmtree's walk; anything else (a file, a non-empty folder, a symlink: rmdir never follows one,
    it fails with ENOTDIR) goes to rmtree, whose walk does not follow symlinks either."""
    try:
        for name, _target in sandbox.PRIVATE_TMP:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(os.path.join(workdir, name))
        os.rmdir(workdir)
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (the fallback when there is no cgroup to ask)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Supervisor:
    def __init__(self, control: Path, spec: dict[str, Any]) -> None:
        self.control, self.spec = control, spec
        self.cgroup: JobCgroup | None = None
        if spec["cgroup"]:
            # The agent names the group's folders (no /proc/self/mountinfo parse per job); a spec
            # without them (an older agent's) is resolved here as before.
            dirs = spec.get("cgroup_dirs")
            self.cgroup = (
                JobCgroup(int(spec["cgroup_version"]), {c: Path(d) for c, d in dirs.items()})
                if dirs
                else CgroupHost(spec["cgroup_parent"]).job(spec["job_id"])
            )
        self.child = 0

    def processes(self) -> list[int]:
        return self.cgroup.pids() if self.cgroup else descendants(os.getpid())

    def terminate(self, *_: object) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def kill_all(self, *_: object) -> None:
        if self.cgroup:
            self.cgroup.kill_all()
            return
        for _round in range(100):  # a process forked between listing and killing is met next round
            pids = descendants(os.getpid())
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def run(self) -> None:
        out = os.open(self.control / OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        status_r, status_w = os.pipe()
        if self.spec["isolate_pids"]:
            sandbox.unshare(sandbox.CLONE_NEWPID)  # for our next child only: it becomes pid 1
        signal.signal(signal.SIGTERM, self.terminate)
        signal.signal(signal.SIGUSR1, self.kill_all)
        os.close(os.open(self.control / READY, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        supervisor = os.getpid()
        self.child = os.fork()
        if self.child == 0:
            os.close(status_r)
            _job_process(self.spec, self.cgroup, out, status_w, supervisor)  # never returns
        os.close(status_w)
        os.close(out)
        main_status = None
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == self.child:
                main_status = status
                self.kill_all()  # what the command left behind would keep holding the GPUs
        if self.spec.get("container"):
            remove_container(self.spec["container"])  # a killed client leaves its container running
        if self.cgroup:
            self.cgroup.kill_all()  # a process that joined the group from elsewhere (it should not)
            with contextlib.suppress(OSError):
                self.cgroup.remove()
        with os.fdopen(status_r, "rb") as f:
            told = f.read().decode(errors="replace")
        remove_workdir(self.spec["workdir"])
        write_atomically(self.control / EXIT, _exit_record(told, main_status))


def remove_container(container: dict[str, Any], timeout: float = 120.0) -> None:
    """Stop (SIGKILL) and remove the job's container, if it is still there ("no such container": done)."""
    import subprocess  # only container jobs pay for it

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            container["remove"],
            env=container["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )


def _exit_record(told: str, main_status: int | None) -> dict[str, Any]:
    record: dict[str, Any] = {"finished_at": datetime.now(UTC).isoformat()}
    if told.startswith("error:"):
        record["error"] = told.removeprefix("error:")
        return record
    status = int(told) if told.strip().lstrip("-").isdigit() else main_status
    if status is None:
        record["error"] = "the job's supervisor lost its process"
        return record
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        sig = signal.Signals(-code)
        record.update(exit_code=128 + sig.value, signal=sig.name)
    else:
        record["exit_code"] = code
    return record


def _die_with_the_supervisor(supervisor: int, status_w: int) -> None:
    """SIGKILL this process when the supervisor dies: a supervisor killed while its job was still being
    set up (not yet in its cgroup, where the agent looks for what is left) takes the job with it, instead
    of leaving it running unseen. Set again after every change of credentials, which clears it.

    A supervisor that died before the signal was set is caught after: our parent changed, or (as pid 1
    of a new pid namespace, whose parent is always 0 to it) the status pipe has no reader left, which
    only the supervisor held."""
    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() not in (supervisor, 0) or not _has_reader(status_w):
        os._exit(127)


def _has_reader(pipe_w: int) -> bool:
    """False when every read end of the pipe is closed (the kernel then flags its write end POLLERR)."""
    poller = select.poll()
    poller.register(pipe_w, 0)  # POLLERR and POLLHUP are always reported
    return not any(event & (select.POLLERR | select.POLLHUP) for _fd, event in poller.poll(0))


# What the Python runtime ignores at start-up and an exec would pass on as ignored: a job gets them at
# their defaults, as a shell would start it (`yes | head -1` must end `yes` with SIGPIPE, not EPIPE).
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def _default_dispositions() -> None:
    for sig in PYTHON_IGNORES:
        signal.signal(sig, signal.SIG_DFL)


def _job_process(
    spec: dict[str, Any], cgroup: JobCgroup | None, out: int, status_w: int, supervisor: int = 0
) -> None:
    """The job's first process (in the child of the fork): sandbox, then exec or act as pid 1."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        if supervisor:
            _die_with_the_supervisor(supervisor, status_w)
        if cgroup:
            cgroup.attach()
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        container = spec.get("container")
        if container:
            # The container runtime's client, as the agent (it needs the runtime's socket): the runtime
            # gives the command its namespaces, its uid, its GPUs; the client only attaches its output.
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir("/")
            _default_dispositions()
            os.execve(container["argv"][0], container["argv"], container["env"])
        sandbox.enter_namespaces(
            spec["isolate_pids"],
            spec["isolate_network"],
            spec["user_namespace"],
            spec.get("private_tmp") or (),
            spec["workdir"],
        )
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sandbox.drop_privileges(spec["uid"], spec["gid"])
        if supervisor:
            _die_with_the_supervisor(supervisor, status_w)
        os.chdir(spec["workdir"])
        argv = ["/bin/sh", "-c", spec["command"]]
        if not spec["isolate_pids"]:
            os.close(status_w)
            _default_dispositions()
            os.execve(argv[0], argv, spec["env"])
        _init(argv, spec["env"], status_w)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(status_w, f"error:the job's sandbox could not be set up: {exc}".encode())
    os._exit(127)


def _init(argv: list[str], env: dict[str, str], status_w: int) -> None:
    """pid 1 of the job's namespace: its exit ends every process of the namespace (the kernel's rule)."""
    # As pid 1, only signals we handle arrive: pass a cancel on to every process of the namespace.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(-1, signal.SIGTERM))
    # posix_spawn (vfork and exec) rather than fork: no copy of this Python process's memory for a
    # child that only execs. In its own process group, SIGTERM at its default; the status pipe is
    # close-on-exec (os.pipe), so the command never holds it.
    command = os.posix_spawn(argv[0], argv, env, setpgroup=0, setsigdef=(signal.SIGTERM, *PYTHON_IGNORES))
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == command:
            os.write(status_w, str(status).encode())
            os._exit(0)


def probe(is_root: bool) -> dict[str, str | None]:
    """Which isolation this kernel grants us: {feature: None when it works, else why not}."""
    found: dict[str, str | None] = {}
    tries = {"pid": (True, False), "network": (False, True), "mount": (False, False)}
    for name, (pids, network) in tries.items():
        if pids and not is_root:
            found[name] = "not root: a pid namespace is used only when the agent runs as root"
            continue
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            try:
                if not pids and not network:  # a mount namespace with a private /tmp and /dev/shm
                    sandbox.enter_namespaces(False, False, not is_root, [["/tmp", "/tmp"]])
                elif pids:
                    sandbox.unshare(sandbox.CLONE_NEWPID)
                    if os.fork() == 0:
                        sandbox.enter_namespaces(True, False, False)
                        os._exit(0)
                    _, status = os.wait()
                    if status:
                        raise OSError("mounting /proc in a new pid namespace failed")
                else:
                    sandbox.enter_namespaces(False, True, not is_root)
                os._exit(0)
            except BaseException as exc:
                os.write(w, str(exc).encode())
                os._exit(1)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            reason = f.read().decode(errors="replace")
        os.waitpid(child, 0)
        found[name] = reason or None
    return found


def main(argv: list[str]) -> None:
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe(os.geteuid() == 0)))
        return
    control = Path(argv[0])
    sandbox.make_undumpable()  # its environment and memory are the agent's business, not the job's
    sandbox.prctl(sandbox.PR_SET_CHILD_SUBREAPER, 1)
    Supervisor(control, json.loads((control / SPEC).read_text())).run()


if __name__ == "__main__":
    main(sys.argv[1:])
    # The exit is recorded: leave now. The agent learns the exit when this process ends (a pidfd), and
    # the interpreter's teardown would add some 15 ms to every job for nothing it has left to do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
