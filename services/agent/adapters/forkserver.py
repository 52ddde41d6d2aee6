"""A fork server for the per-job supervisors: ``python -S -m services.agent.adapters.forkserver --fd N``.

Starting a supervisor as a new interpreter (``python -m …shim``) costs some 40–60 ms of CPU and, on a
busy host, a few hundred milliseconds before the job's first instruction: the interpreter's start and
its imports, paid once per job. The fork server pays them once. It is a small process the agent starts
with the same bare environment a supervisor gets (``PATH`` and ``PYTHONPATH``, none of the agent's
settings or secrets), that imports the supervisor's code and then forks one supervisor per request, in
about a millisecond. A forked supervisor is what a started one is: in a session of its own, stdin on
``/dev/null``, stdout and stderr on its ``shim.log``, cwd ``/``, default signal handlers, and it runs
:func:`shim.main` on its control folder.

Protocol, over a Unix stream socket pair (the agent holds one end, the server inherits the other):
a request is one JSON line ``{"control": "<folder>"}``; the answer is one JSON line
``{"pid": N, "start": T}`` (``T``: the process's start time in clock ticks since boot, field 22 of
``/proc/<pid>/stat``, which with the pid names the process for good) with the supervisor's pidfd
attached (``SCM_RIGHTS``), or ``{"error": "…"}``. The pidfd lets the agent learn of the exit of a
process that is not its child, even when that exit came before the answer did.

The first thing a forked supervisor does is write ``shim.pid`` (``"<pid> <start>"``): a supervisor's
command line is the fork server's, so a restarted agent finds its supervisors by that file, not by
``/proc/<pid>/cmdline``. The server reaps its children (they are its children until they exit). It ends
when the agent's end of the socket closes (the agent stopped or died); supervisors already forked go on,
as they do when the agent dies.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import sandbox, shim

if TYPE_CHECKING:
    import subprocess

# The agent's side (ForkServer) imports logging, subprocess and threading when it needs them: the
# agent has them loaded already, and the server never does. Every module the server holds is copied
# into each supervisor it forks, and these three cost each fork more than their size: their at-fork
# hooks (threading's, logging's lock re-inits) run, and write to shared pages, in every child.
LOGGER = "gpufleet.agent.jobs"

MODULE = "services.agent.adapters.forkserver"
MAX_LINE = 64 * 1024


class ForkServerUnavailable(OSError):
    """The fork server is not running or stopped answering: start this supervisor the slow way."""


def start_time(pid: int) -> int:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        stat = os.read(fd, 4096)  # one read: the kernel hands a stat line out whole
    finally:
        os.close(fd)
    return int(stat.rsplit(b")", 1)[1].split()[19])


def write_pid_file(control: Path, pid: int, start: int) -> None:
    """``shim.pid``, whole or not at all (written aside, then renamed over)."""
    tmp, final = os.path.join(control, f".{shim.PID}.tmp"), os.path.join(control, shim.PID)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{pid} {start}".encode())
    finally:
        os.close(fd)
    os.replace(tmp, final)


# ------------------------------------------------------------------------------------ the server


def _reap(_signum: int = 0, _frame: object = None) -> None:
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return


def _close_inherited() -> None:
    """Close every descriptor above stderr (the server's socket among them: it is not the job's)."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2:
            with contextlib.suppress(OSError):
                os.close(int(name))


def _supervise(control: Path) -> None:
    """In the forked child: become a supervisor of ``control`` exactly as a fresh interpreter would."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.setsid()
        write_pid_file(control, os.getpid(), start_time(os.getpid()))
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(control / "shim.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        _close_inherited()
        os.chdir("/")
        shim.main([str(control)])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(Exception):
            import traceback  # only a failing supervisor pays for it

            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fork(control: Path) -> tuple[dict[str, int], int]:
    # SIGCHLD stays blocked until the child's pidfd is open: a child that ends at once is not reaped
    # (and its pid freed for reuse) before the pidfd names it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        pid = os.fork()
        if pid == 0:
            _supervise(control)  # never returns
        pidfd = os.pidfd_open(pid)
        return {"pid": pid, "start": start_time(pid)}, pidfd
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with sock, sock.makefile("rb") as requests:
        while line := requests.readline(MAX_LINE):
            try:
                control = Path(json.loads(line)["control"])
                answer, pidfd = _fork(control)
            except Exception as exc:  # an answer for every request, even one that cannot be served
                sock.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
                continue
            try:
                socket.send_fds(sock, [json.dumps(answer).encode() + b"\n"], [pidfd])
            finally:
                os.close(pidfd)
            _reap()


def main(argv: list[str]) -> None:
    if argv[:1] != ["--fd"] or len(argv) != 2:
        raise SystemExit(f"usage: python -m {MODULE} --fd N")
    sandbox.make_undumpable()
    # Everything imported so far is left out of the collector's passes, here and in every supervisor:
    # a pass would touch each object's header and so copy, page by page, the memory a fork shares.
    gc.freeze()
    serve(socket.socket(fileno=int(argv[1])))


# ------------------------------------------------------------------------------------ the agent's side


class ForkServer:
    """The agent's handle on its fork server: started on first use, started again after it died.
    :meth:`spawn` is safe to call from several threads (the runner starts jobs in worker threads)."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        import threading

        self._argv = (python, "-S", "-m", MODULE)
        self._env = env
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> socket.socket:
        import logging
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._process = subprocess.Popen(
                [*self._argv, "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                cwd="/",
                env=self._env,
                start_new_session=True,  # the terminal's signals (a Ctrl-C of `make dev`) do not reach it
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        logging.getLogger(LOGGER).info("supervisor fork server started", extra={"pid": self._process.pid})
        return ours

    def spawn(self, control: Path) -> tuple[int, int, int]:
        """Fork a supervisor for ``control``: ``(pid, start time, pidfd)``; the caller owns the pidfd.
        Raises :class:`ForkServerUnavailable` when the server cannot be reached (it is started anew
        on the next call) and OSError when it could not fork."""
        with self._lock:
            try:
                sock = self._sock or self._start()
                sock.sendall(json.dumps({"control": str(control)}).encode() + b"\n")
                data, fds, _flags, _addr = socket.recv_fds(sock, MAX_LINE, 1)
            except OSError as exc:
                self._drop()
                raise ForkServerUnavailable(f"the supervisor fork server is unreachable: {exc}") from exc
            if not data:
                for fd in fds:
                    os.close(fd)
                self._drop()
                raise ForkServerUnavailable("the supervisor fork server stopped")
        answer = json.loads(data)
        if "error" in answer:
            for fd in fds:
                os.close(fd)
            raise OSError(f"the supervisor fork server could not start the job: {answer['error']}")
        if len(fds) != 1:
            raise ForkServerUnavailable("the supervisor fork server sent no pidfd")
        return int(answer["pid"]), int(answer["start"]), fds[0]

    def _drop(self) -> None:
        import subprocess

        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                process.wait(timeout=5)

    def close(self) -> None:
        """Stop the server (its end of the socket closes: it exits); forked supervisors go on."""
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
            process, self._process = self._process, None
        if process is not None:
            import subprocess

            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


if __name__ == "__main__":
    main(sys.argv[1:])
