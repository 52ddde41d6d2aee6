"""The state file and the process runner against the real file system and real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.agent.adapters import processes
from services.agent.adapters.processes import ProcessRunner, SandboxSettings
from services.agent.adapters.report_store import JsonReportStore
from services.agent.adapters.sandbox import SAFE_PATH, job_environment
from services.agent.domain.model import Distributed, JobFinished, JobStarted

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_jobs_roots_left(monkeypatch):
    """Jobs roots live in /tmp (a job uid cannot enter pytest's 0700 tmp_path): remove them after."""
    made: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    yield
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def runner(state: Path, tail: int = 1024) -> ProcessRunner:
    jobs = Path(tempfile.mkdtemp(prefix="gpufleet-it-jobs-"))
    return ProcessRunner(state, tail, SandboxSettings(jobs_root=jobs))


def test_reports_survive_a_round_trip_through_the_file(tmp_path):
    store = JsonReportStore(tmp_path / "state" / "pending.json")
    reports = [
        JobStarted("a", NOW),
        JobFinished("a", NOW, exit_code=None, output_tail="é\n", cancelled=True, error_message="x"),
        JobFinished("b", NOW, exit_code=143, timed_out=True, attempt=2, error_message="timed out"),
    ]
    store.save(reports)
    assert JsonReportStore(tmp_path / "state" / "pending.json").load() == reports
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["pending.json"]  # no temp file left


def test_a_corrupt_file_is_set_aside_not_fatal(tmp_path):
    path = tmp_path / "pending.json"
    path.write_text("{not json")
    assert JsonReportStore(path).load() == []
    assert not path.exists()
    assert len(list(tmp_path.glob("pending.json.corrupt-*"))) == 1


def test_the_job_environment_is_an_allowlist_plus_what_the_submitter_set():
    env = job_environment(
        "j", [2, 3], Path("/jobs/j"), submitter_env={"EPOCHS": "3", "GPUFLEET_AGENT_TOKEN": "x", "LANG": "fr"}
    )
    assert env == {
        "PATH": SAFE_PATH,
        "HOME": "/jobs/j",
        "TMPDIR": "/jobs/j",
        "LANG": "fr",
        "LC_ALL": "C.UTF-8",
        "EPOCHS": "3",
        "CUDA_VISIBLE_DEVICES": "2,3",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "GPUFLEET_JOB_ID": "j",
        "GPUFLEET_RANK": "0",
        "GPUFLEET_WORLD_SIZE": "1",
        "GPUFLEET_NODE_NAMES": "",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
    }


def test_a_gang_members_environment_says_where_it_stands_and_the_submitter_cannot_fake_it():
    gang = Distributed(
        rank=2, world_size=4, master_addr="n0", master_port=29611, node_names=("n0", "n1", "n2", "n3")
    )
    env = job_environment(
        "j",
        [0],
        Path("/jobs/j"),
        submitter_env={"RANK": "0", "MASTER_ADDR": "evil", "RANKS": "ok"},
        distributed=gang,
    )
    assert (env["GPUFLEET_RANK"], env["GPUFLEET_WORLD_SIZE"], env["GPUFLEET_NODE_NAMES"]) == (
        "2",
        "4",
        "n0,n1,n2,n3",
    )
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("2", "4", "0")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("n0", "29611")
    assert env["RANKS"] == "ok"  # only the exact names are reserved


@pytest.mark.parametrize("pid_namespace", [True, False])
async def test_a_job_gets_the_default_signal_dispositions_not_pythons(tmp_path, pid_namespace):
    """Python ignores SIGPIPE (and SIGXFSZ) and an exec keeps what is ignored: a job must not inherit
    that from the agent's processes, or `yes | head -1` would never end `yes` the way a shell does."""
    command = '(yes; echo "yes ended $?" >&2) | head -n 1 >/dev/null; grep SigIgn /proc/self/status'
    jobs = runner(tmp_path)
    if not pid_namespace:  # as a non-root agent runs jobs: exec'd by the job's first process itself
        jobs.is_root = False
    job = await jobs.spawn(str(uuid.uuid4()), command, [0])
    done = await asyncio.wait_for(job.wait(), 30)
    assert done.exit_code == 0, done.output_tail
    assert "yes ended 141" in done.output_tail  # 128 + SIGPIPE: killed by it, as in any shell
    ignored = int(done.output_tail.split("SigIgn:")[1].split()[0], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))
    job.release()


async def test_only_the_output_tail_is_kept(tmp_path):
    job = await runner(tmp_path, 10).spawn(str(uuid.uuid4()), "seq 1 1000; echo oops >&2", [0])
    done = await asyncio.wait_for(job.wait(), 30)
    assert done.exit_code == 0 and done.finished_at is not None
    assert done.output_tail == "1000\noops\n"  # stderr merged into stdout, only the last 10 bytes
    job.release()


def test_a_jobs_folder_that_cannot_be_made_is_refused_at_start(tmp_path):
    (tmp_path / "jobs").write_text("a file where the jobs folder should be")
    with pytest.raises(OSError):
        ProcessRunner(tmp_path / "state", 100, SandboxSettings(jobs_root=tmp_path / "jobs"))


def test_the_jobs_folder_must_be_outside_the_state_folder(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        ProcessRunner(tmp_path, 100, SandboxSettings(jobs_root=tmp_path / "jobs"))


async def test_a_malformed_job_id_cannot_name_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a UUID"):
        await runner(tmp_path).spawn("../../etc", "true", [0])


# Forked in an interpreter of its own: forking the test process (threads of gRPC and the broker client)
# lets their fork handlers abort the child.
_SUPERVISOR_DIES_FIRST = """
import os, sys
from services.agent.adapters import sandbox, shim

sandbox.prctl(sandbox.PR_SET_CHILD_SUBREAPER, 1)  # the orphan becomes ours: we learn how it ended
go_r, go_w = os.pipe()
supervisor = os.fork()
if supervisor == 0:  # a pid namespace for its next child, the status pipe, then death
    os.close(go_w)
    status_r, status_w = os.pipe()
    sandbox.unshare(sandbox.CLONE_NEWPID)
    if os.fork() == 0:  # the job's first process: goes on once its supervisor is gone
        os.close(status_r)
        os.read(go_r, 1)
        shim._die_with_the_supervisor(os.getppid(), status_w)  # getppid() is 0 here
        os._exit(0)  # it did not notice
    os._exit(0)
os.close(go_r)
os.waitpid(supervisor, 0)
os.write(go_w, b"x")
_pid, status = os.waitpid(-1, 0)  # the orphan, ours now
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a pid namespace needs root")
def test_a_job_process_whose_supervisor_died_before_it_set_its_death_signal_ends_itself():
    """As pid 1 of its pid namespace the job's process always sees parent 0, so a supervisor that died
    before PR_SET_PDEATHSIG was set is recognised by the status pipe that lost its only reader."""
    done = subprocess.run(
        [sys.executable, "-c", _SUPERVISOR_DIES_FIRST], timeout=30, capture_output=True, text=True
    )
    assert done.returncode == 127, done.stderr


async def test_a_job_whose_supervisor_died_is_killed_and_not_taken_back(tmp_path):
    first = runner(tmp_path)
    job_id = str(uuid.uuid4())
    handle = await first.spawn(job_id, "sleep 60", [0])
    os.kill(handle.pid, 9)  # the supervisor dies (not the agent): its job must not run on unseen
    done = await asyncio.wait_for(handle.wait(), 30)
    assert done.exit_code is None and "supervisor" in done.error
    cgroup = handle.cgroup()
    assert cgroup is None or not cgroup.pids()
    handle.release()
    second = ProcessRunner(tmp_path, 1024, first.settings)
    assert second.adopt() == []


async def test_the_exit_is_learned_when_the_supervisor_ends_not_at_the_next_poll(tmp_path, monkeypatch):
    # With polling pushed out of reach, only the supervisor's pidfd can end these waits in time: for a
    # supervisor this agent started and for one a restarted agent took back (not its child).
    monkeypatch.setattr(processes, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(processes, "EXIT_RECHECK_SECONDS", 3600.0)
    first = runner(tmp_path)
    started = await first.spawn(str(uuid.uuid4()), "true", [0])
    done = await asyncio.wait_for(started.wait(), 30)
    assert done.exit_code == 0
    started.release()

    left = await first.spawn(str(uuid.uuid4()), "sleep 2; exit 3", [0])
    ((_, adopted),) = ProcessRunner(tmp_path, 1024, first.settings).adopt()
    waiting = asyncio.ensure_future(adopted.wait())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # followed while it runs, not mistaken for gone
    done = await asyncio.wait_for(waiting, 30)
    assert done.exit_code == 3
    adopted.release()
    left.supervisor_alive()  # reaps the supervisor, still the first runner's child


async def test_a_jobs_supervisor_is_a_fork_of_the_fork_server_and_a_restarted_agent_takes_it_back(tmp_path):
    first = runner(tmp_path)
    handle = await first.spawn(str(uuid.uuid4()), "sleep 2; exit 4", [0])
    cmdline = Path(f"/proc/{handle.pid}/cmdline").read_bytes()
    assert b"forkserver" in cmdline  # not a new interpreter
    first.close()  # the agent stops: its fork server goes, the supervisor stays
    ((_, adopted),) = ProcessRunner(tmp_path, 1024, first.settings).adopt()
    assert adopted.pid == handle.pid and adopted.supervisor_alive()
    done = await asyncio.wait_for(adopted.wait(), 30)
    assert done.exit_code == 4
    adopted.release()


async def test_without_its_fork_server_a_job_still_starts_as_a_new_interpreter(tmp_path, monkeypatch):
    r = runner(tmp_path)
    assert r.forkserver is not None

    def unreachable(control: Path) -> tuple[int, int, int]:
        raise processes.forkserver.ForkServerUnavailable("gone")

    monkeypatch.setattr(r.forkserver, "spawn", unreachable)
    handle = await r.spawn(str(uuid.uuid4()), "sleep 1; exit 5", [0])
    assert b"forkserver" not in Path(f"/proc/{handle.pid}/cmdline").read_bytes()
    done = await asyncio.wait_for(handle.wait(), 30)
    assert done.exit_code == 5
    handle.release()
