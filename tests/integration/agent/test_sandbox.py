"""The job sandbox with real processes: what a job can read, reach and leave behind.

Run as root (as the GPU hosts and CI do): jobs then get their own uid, pid and network namespaces and a
cgroup. As another user the checks that need those are skipped, each saying which guarantee is missing.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from services.agent.adapters.processes import ProcessRunner, SandboxSettings
from services.agent.adapters.sandbox import distributed_environment, make_undumpable
from services.agent.domain.model import Distributed

from .conftest import OPEN_DEVICES

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
    # ppid environ, .., the state folder, the other job's: refused, or (a folder in the host's /tmp,
    # which the job's private /tmp hides) not there at all.
    for section in ("--ppid", "--up", "--state", "--other"):
        part = out.split(section + "\n")[1].split("\n--")[0]
        assert "Permission denied" in part or "No such file or directory" in part, (section, part)
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


def need_private_mounts(runner: ProcessRunner) -> None:
    if not runner.private_mounts:
        pytest.skip(f"the kernel refuses a mount namespace here: {runner.kernel.get('mount')}")


LIST_TMP = 'for d in /tmp /var/tmp /dev/shm; do echo "== $d"; ls -A $d; done'


async def test_a_jobs_tmp_var_tmp_and_shm_are_its_own_and_go_with_it(tmp_path):
    runner = make_runner(tmp_path / "state")
    need_private_mounts(runner)
    mark = uuid.uuid4().hex[:8]
    agents = [Path(f"/tmp/agent-{mark}"), Path(f"/dev/shm/agent-{mark}")]
    for path in agents:
        path.write_text("the agent's")
    other = await runner.spawn(
        str(uuid.uuid4()),
        f"touch /tmp/other-{mark} /var/tmp/other-{mark} /dev/shm/other-{mark} && echo ready && sleep 30",
        [1],
    )
    await until(lambda: "ready" in other.output_tail())
    job = await runner.spawn(
        str(uuid.uuid4()),
        f'{LIST_TMP}; echo "TMPDIR=$TMPDIR"; echo "== write"; '
        f"echo mine > /tmp/mine-{mark} && echo mine > /var/tmp/mine-{mark} && echo mine > /dev/shm/mine-{mark}"
        f" && cat /tmp/mine-{mark} /var/tmp/mine-{mark} /dev/shm/mine-{mark}",
        [0],
    )
    done = await asyncio.wait_for(job.wait(), WAIT)
    out = done.output_tail
    try:
        assert done.exit_code == 0, out
        listed = out.split("== write")[0]
        assert mark not in listed, out  # neither the agent's files nor the other job's
        assert "TMPDIR=/tmp" in out and out.endswith("mine\nmine\nmine\n"), out
        # What the job left in its temp folders went with it; the host's are untouched.
        for folder in ("/tmp", "/var/tmp", "/dev/shm"):
            assert not list(Path(folder).glob(f"mine-{mark}")) and not list(
                Path(folder).glob(f"other-{mark}")
            )
        assert all(path.read_text() == "the agent's" for path in agents)
        assert not (runner.jobs_root / job.job_id).exists()
    finally:
        for path in agents:
            path.unlink()
        job.release()
        await other.terminate(1)
        await asyncio.wait_for(other.wait(), WAIT)
        other.release()


async def test_without_a_mount_namespace_tmpdir_is_a_private_folder_of_the_job(tmp_path):
    runner = make_runner(tmp_path / "state")
    runner.kernel["mount"] = "refused (as a kernel without unprivileged user namespaces would)"
    job = await runner.spawn(
        str(uuid.uuid4()), 'echo "TMPDIR=$TMPDIR"; stat -c "%a %u" "$TMPDIR"; echo x > "$TMPDIR/f"', [0]
    )
    done = await asyncio.wait_for(job.wait(), WAIT)
    workdir = runner.jobs_root / job.job_id
    assert done.exit_code == 0, done.output_tail
    assert f"TMPDIR={workdir}/.tmp" in done.output_tail
    assert not workdir.exists()  # its temp folder went with its folder
    job.release()


async def test_a_job_can_open_its_own_gpus_device_node_and_no_other(tmp_path, device_nodes):
    runner = make_runner(tmp_path / "state")
    need_root(runner, "cgroup")
    if runner.device_problem:
        pytest.skip(f"no device cgroup here: {runner.device_problem}")
    names = " ".join(str(device_nodes / n) for n in ("nvidia0", "nvidia1", "nvidiactl", "uvm", "null"))
    job = await runner.spawn(
        str(uuid.uuid4()), f"{PYTHON} -c {shlex.quote(OPEN_DEVICES)} {names}; sleep 30", [0]
    )
    cgroup = job.cgroup()
    assert cgroup is not None
    if cgroup.version == 1:
        allowed = cgroup.device_list()
        assert "c 195:0 rwm" in allowed and "c 195:255 rwm" in allowed and "c 1:* rwm" in allowed
        assert "c 195:1 rwm" not in allowed and "a *:* rwm" not in allowed and "c *:* rwm" not in allowed
    else:  # cgroup v2: the rules are a BPF program on the group (tests/unit/agent/test_device_filter.py)
        from services.agent.adapters import device_filter

        assert device_filter.attached(cgroup.dirs[0]) == 1
    await until(lambda: "null" in job.output_tail())
    out = job.output_tail()
    await job.terminate(1)
    await asyncio.wait_for(job.wait(), WAIT)
    job.release()
    result = dict(line.rsplit(" ", 1) for line in out.splitlines() if line.startswith(str(device_nodes)))
    # ENXIO: the cgroup let the open through to a driver that is not there (no GPU on this host);
    # EPERM: the cgroup refused it before any driver was asked.
    assert result == {
        f"{device_nodes}/nvidia0": "ENXIO",
        f"{device_nodes}/nvidia1": "EPERM",
        f"{device_nodes}/nvidiactl": "ENXIO",
        f"{device_nodes}/uvm": "ENXIO",
        f"{device_nodes}/null": "opened",
    }, out


async def test_without_a_device_cgroup_the_same_job_opens_every_gpu(tmp_path, device_nodes):
    """The control: with the cgroup's device rules off, nvidia1 opens as far as its (absent) driver."""
    runner = make_runner(tmp_path / "state")
    need_root(runner)
    runner.device_problem = "turned off for this test"
    job = await runner.spawn(
        str(uuid.uuid4()), f"{PYTHON} -c {shlex.quote(OPEN_DEVICES)} {device_nodes}/nvidia1", [0]
    )
    done = await asyncio.wait_for(job.wait(), WAIT)
    job.release()
    assert f"{device_nodes}/nvidia1 ENXIO" in done.output_tail


async def test_a_job_naming_an_image_fails_on_an_agent_without_a_container_runtime(tmp_path):
    from services.agent.adapters.processes import no_runtime_message

    runner = make_runner(tmp_path / "state")
    job_id = str(uuid.uuid4())
    with pytest.raises(ValueError) as refused:
        await runner.spawn(job_id, "echo on-the-host > /tmp/ran", [0], image="docker.io/library/busybox")
    assert str(refused.value) == no_runtime_message("docker.io/library/busybox")
    assert "not run on the host" in str(refused.value)
    assert not (runner.control_root / job_id).exists() and not (runner.jobs_root / job_id).exists()
