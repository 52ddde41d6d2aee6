"""The job sandbox with real processes: what a job can read, reach and leave behind.

Run as root (as the GPU hosts and CI do): jobs then get their own uid, pid and network namespaces and a
cgroup. As another user the checks that need those are skipped, each saying which guarantee is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from services.agent.adapters.processes import ProcessRunner, SandboxSettings
from services.agent.adapters.sandbox import distributed_environment, make_undumpable
from services.agent.domain.model import Distributed

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


WAIT = 30.0
SECRET = "agent-secret-7f3a"  # stands for the agent token and database URLs in the agent's environment
QUEUE_SECRET = "queued-report-of-org-a"
TENANT_SECRET = "tenant-b-private-9c1e"
PYTHON = "/usr/bin/python3"


def make_runner(state: Path, network: str = "none", jobs: Path | None = None) -> ProcessRunner:
    jobs = jobs or Path(tempfile.mkdtemp(prefix="gpufleet-it-jobs-"))
    return ProcessRunner(state, 64 * 1024, SandboxSettings(jobs_root=jobs, network=network))  # type: ignore[arg-type]


def need_root(runner: ProcessRunner, *features: str) -> None:
    if not runner.is_root:
        pytest.skip("the agent is not root: jobs share its uid (no per-job uid, pid or network namespace)")
    for feature in features:
        if feature == "cgroup" and runner.cgroup_problem:
            pytest.skip(f"the kernel refuses job cgroups here: {runner.cgroup_problem}")
        elif feature != "cgroup" and runner.kernel.get(feature):
            pytest.skip(f"the kernel refuses a {feature} namespace here: {runner.kernel[feature]}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def until(condition, timeout: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture
def listener():
    """A TCP port on loopback: stands for the broker, PostgreSQL and the gRPC ports."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def probe_script(agent_pid: int, state: Path, other_folder: Path, port: int) -> str:
    connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('tcp=connected')"
    return f"""
env | sort
echo "--ppid"; tr '\\0' '\\n' < /proc/$PPID/environ
echo "--agent"; tr '\\0' '\\n' < /proc/{agent_pid}/environ
echo "--up"; ls -a ..
echo "--state"; ls -a {state}; cat {state}/pending_reports.json
echo "--other"; ls -a {other_folder}; cat {other_folder}/secret.txt
echo "--ps"; ps -eo pid,args
echo "--tcp"; {PYTHON} -c "{connect}" 2>&1 | tail -1
echo "--end"
"""


async def test_a_job_finds_nothing_of_the_control_plane_or_of_other_tenants(tmp_path, monkeypatch, listener):
    monkeypatch.setenv("GPUFLEET_AGENT_TOKEN", SECRET)
    make_undumpable()  # what the agent does at start
    state = tmp_path / "state"
    runner = make_runner(state)
    need_root(runner, "pid", "network", "cgroup")
    (state / "pending_reports.json").write_text(f'{{"reports": ["{QUEUE_SECRET}"]}}')
    other_id = str(uuid.uuid4())
    other = await runner.spawn(
        other_id, f"echo {TENANT_SECRET} > secret.txt; sleep 30 # {TENANT_SECRET}", [1]
    )
    other_folder = runner.jobs_root / other_id
    await until(lambda: (other_folder / "secret.txt").exists())

    job_id = str(uuid.uuid4())
    job = await runner.spawn(job_id, probe_script(os.getpid(), state, other_folder, listener), [0])
    done = await asyncio.wait_for(job.wait(), WAIT)
    out = done.output_tail
    assert "--end" in out, out
    for secret in (SECRET, QUEUE_SECRET, TENANT_SECRET, "GPUFLEET_AGENT_TOKEN", "PYTHONPATH"):
        assert secret not in out, f"{secret} leaked:\n{out}"
    env = dict(line.split("=", 1) for line in out.split("--ppid")[0].splitlines() if "=" in line)
    assert set(env) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "PWD",
        "SHLVL",
        "GPUFLEET_JOB_ID",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        *distributed_environment(Distributed()),
        "OLDPWD",
        "_",
    }
    assert env["GPUFLEET_JOB_ID"] == job_id and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert out.count("Permission denied") >= 4  # ppid environ, .., the state folder, the other job's
    ps = out.split("--ps")[1].split("--tcp")[0]
    # Only this job's own processes (header, its init, its shell, ps): not the other job's sleep.
    assert "sleep 30" not in ps and len(ps.strip().splitlines()) <= 5, ps
    tcp = out.split("\n--tcp\n")[1]
    assert "tcp=connected" not in tcp and "Connection refused" in tcp, tcp
    assert not (runner.jobs_root / job_id).exists()  # the folder went with the job
    job.release()
    await other.terminate(1)
    await asyncio.wait_for(other.wait(), WAIT)
    other.release()


async def test_with_host_network_the_job_can_reach_loopback(tmp_path, listener):
    runner = make_runner(tmp_path / "state", network="host")
    job = await runner.spawn(
        str(uuid.uuid4()),
        f"{PYTHON} -c \"import socket; socket.create_connection(('127.0.0.1', {listener}), 2); print('ok')\"",
        [0],
    )
    done = await asyncio.wait_for(job.wait(), WAIT)
    job.release()
    assert done.exit_code == 0 and "ok" in done.output_tail  # so the isolated case above could fail


async def test_cancel_kills_a_setsid_child_and_reports_only_after_it_is_gone(tmp_path):
    runner = make_runner(tmp_path / "state")
    need_root(runner, "cgroup")
    job = await runner.spawn(
        str(uuid.uuid4()), "setsid sh -c \"trap '' TERM; sleep 300\" & echo started; sleep 300", [0]
    )
    cgroup = job.cgroup()
    assert cgroup is not None
    await until(lambda: len(cgroup.pids()) >= 4)  # init, sh, the setsid'd sh and the sleeps
    pids = cgroup.pids()
    await job.terminate(1.0)
    done = await asyncio.wait_for(job.wait(), WAIT)
    assert [p for p in pids if alive(p)] == []  # every process, the one that left the session too
    assert done.exit_code is not None and "started" in done.output_tail
    assert not cgroup.exists()
    job.release()


async def test_a_job_keeps_running_across_an_agent_restart_and_is_taken_back_once(tmp_path):
    state, jobs = tmp_path / "state", Path(tempfile.mkdtemp(prefix="gpufleet-it-jobs-"))
    first = make_runner(state, jobs=jobs)
    job_id = str(uuid.uuid4())
    await first.spawn(job_id, "echo begun; sleep 3; echo done", [1], organization_id="org-a")
    del first  # the agent dies here: nothing stops the job

    second = make_runner(state, jobs=jobs)
    adopted = second.adopt()
    assert [(local.job_id, local.gpu_indices, local.organization_id) for local, _ in adopted] == [
        (job_id, (1,), "org-a")
    ]
    ((_, handle),) = adopted
    done = await asyncio.wait_for(handle.wait(), WAIT)
    assert done.exit_code == 0 and done.output_tail == "begun\ndone\n"
    handle.release()
    assert second.adopt() == []  # reported once: nothing left to take back


async def test_memory_and_cpu_limits_are_set_on_the_jobs_cgroup(tmp_path):
    from services.agent.adapters.cgroups import Limits

    runner = make_runner(tmp_path / "state")
    need_root(runner, "cgroup")
    job = await runner.spawn(str(uuid.uuid4()), "sleep 30", [0], limits=Limits(cpus=0.5, memory_mb=64))
    cgroup = job.cgroup()
    assert cgroup is not None
    if cgroup.version == 1:
        assert (cgroup.by_controller["memory"] / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert (cgroup.by_controller["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    else:
        assert (cgroup.dirs[0] / "memory.max").read_text().strip() == str(64 << 20)
    await job.terminate(1)
    await asyncio.wait_for(job.wait(), WAIT)
    job.release()
