"""The supervisors' fork server: a forked supervisor runs its job as a started one does, names itself in
``shim.pid``, is told apart by its pidfd, and the server comes back after it died."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path

import pytest

from services.agent.adapters import forkserver, sandbox
from services.agent.adapters.shim import EXIT, OUTPUT, PID, READY, SPEC

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfds (Linux 5.3+)")

ROOT = Path(__file__).resolve().parents[3]


def _control(tmp_path: Path, name: str, command: str) -> Path:
    control = tmp_path / "shims" / name
    control.mkdir(parents=True, mode=0o700)
    workdir = tmp_path / "jobs" / name
    workdir.mkdir(parents=True)
    spec = {
        "job_id": name,
        "command": command,
        "env": {"PATH": sandbox.SAFE_PATH, "HOME": str(workdir)},
        "workdir": str(workdir),
        "uid": None,
        "gid": None,
        "cgroup": False,
        "cgroup_parent": "gpufleet-test",
        "isolate_pids": False,
        "isolate_network": False,
        "user_namespace": False,
    }
    (control / SPEC).write_text(json.dumps(spec))
    return control


def _exited(pidfd: int, timeout: float = 20) -> bool:
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


@pytest.fixture
def server():
    s = forkserver.ForkServer(sys.executable, {"PATH": sandbox.SAFE_PATH, "PYTHONPATH": str(ROOT)})
    yield s
    s.close()


def test_a_forked_supervisor_runs_the_job_and_records_its_exit(tmp_path, server):
    control = _control(tmp_path, "job-1", "echo hello from the job; exit 3")
    pid, start, pidfd = server.spawn(control)
    try:
        assert _exited(pidfd)
    finally:
        os.close(pidfd)
    record = json.loads((control / EXIT).read_text())
    assert record["exit_code"] == 3
    assert b"hello from the job" in (control / OUTPUT).read_bytes()
    assert (control / PID).read_text() == f"{pid} {start}"  # what a restarted agent finds it by


def test_the_supervisor_is_in_its_own_session_without_the_servers_socket(tmp_path, server):
    control = _control(tmp_path, "job-2", "sleep 30")
    pid, start, pidfd = server.spawn(control)
    try:
        deadline = time.monotonic() + 20
        # A cancel is only handled once the supervisor says so (READY, which the agent waits for too):
        # before, SIGTERM at its default would end the supervisor itself, with nothing recorded.
        while not (control / READY).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (control / PID).exists()
        assert os.getsid(pid) == pid
        assert forkserver.start_time(pid) == start
        fds = {os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
        assert not [f for f in fds if f.startswith("socket:")], fds
        os.kill(pid, 15)  # a cancel: the supervisor ends the job and records it
        assert _exited(pidfd)
    finally:
        os.close(pidfd)
    record = json.loads((control / EXIT).read_text())  # recorded once the job's last process was gone
    assert record.get("signal") or record.get("exit_code") is not None, record


def test_an_exit_before_the_answer_is_still_seen_through_the_pidfd(tmp_path, server):
    control = _control(tmp_path, "job-3", "true")
    _pid, _start, pidfd = server.spawn(control)
    try:
        assert _exited(pidfd)  # never missed, however fast the job was
    finally:
        os.close(pidfd)


def test_a_dead_server_is_replaced_on_the_next_start(tmp_path, server):
    first = _control(tmp_path, "job-4", "true")
    _, _, fd = server.spawn(first)
    os.close(fd)
    assert server._process is not None
    server._process.kill()
    server._process.wait()
    with pytest.raises(forkserver.ForkServerUnavailable):
        server.spawn(_control(tmp_path, "job-5", "true"))
    pid, _, fd = server.spawn(_control(tmp_path, "job-6", "exit 0"))  # a new server
    try:
        assert _exited(fd)
    finally:
        os.close(fd)
    assert pid > 0


def test_the_server_holds_none_of_the_agents_environment(server, tmp_path, monkeypatch):
    _, _, fd = server.spawn(_control(tmp_path, "job-7", "true"))
    os.close(fd)
    assert server._process is not None
    env = Path(f"/proc/{server._process.pid}/environ").read_bytes().split(b"\0")
    assert sorted(e.split(b"=")[0] for e in env if e) == [b"PATH", b"PYTHONPATH"]
