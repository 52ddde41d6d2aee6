"""Jobs naming a container image, with real supervisors.

Two kinds of test:

* With a real runtime (docker with the NVIDIA Container Toolkit or plain, podman): skipped, each saying
  why, where ``docker info`` / ``podman info`` does not answer (this project's CI machines have the docker
  CLI but no daemon). The image is ``$GPUFLEET_TEST_IMAGE`` (default ``docker.io/library/busybox``),
  pulled when missing.
* With a recording stand-in for the runtime's client (a script in place of ``docker``): what is tested is
  the agent's side only, never a runtime's: the supervisor runs the client with the command line and env
  file the agent built, captures its output and exit code, and removes the container after the job ends
  or is cancelled.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from services.agent.adapters import containers
from services.agent.adapters.processes import ENV_FILE, ProcessRunner, SandboxSettings
from services.agent.bootstrap import node_labels
from services.agent.domain.model import SUPERVISOR_LOST_MESSAGE
from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL

pytestmark = pytest.mark.integration

WAIT = 60.0
SECRET = "agent-secret-c0ffee"

STAND_IN = """#!{python}
import json, os, sys
log = {log!r}
argv = sys.argv[1:]
record = {{"argv": argv, "env": dict(os.environ)}}
if argv[0] == "run":
    env_file = argv[argv.index("--env-file") + 1]
    record["env_file"] = open(env_file).read()
with open(log, "a") as f:
    f.write(json.dumps(record) + "\\n")
if argv[0] == "run":  # stands for the container: the command, in the env file's environment
    env = dict(line.rstrip("\\n").split("=", 1) for line in record["env_file"].splitlines())
    os.execve("/bin/sh", ["/bin/sh", "-c", argv[-1]], env)
"""


@pytest.fixture(autouse=True)
def _no_jobs_roots_left(monkeypatch):
    made: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    yield
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stand_in():
    folder = Path(tempfile.mkdtemp(prefix="gpufleet-it-runtime-"))
    log = folder / "calls.jsonl"
    client = folder / "docker"
    client.write_text(STAND_IN.format(python=sys.executable, log=str(log)))
    client.chmod(0o755)
    yield client, log
    shutil.rmtree(folder, ignore_errors=True)


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def make_runner(state: Path, runtime: containers.Runtime | None, gpus: bool = True) -> ProcessRunner:
    jobs = Path(tempfile.mkdtemp(prefix="gpufleet-it-jobs-"))
    settings = SandboxSettings(jobs_root=jobs, container_runtime=runtime, container_gpus=gpus)
    return ProcessRunner(state, 64 * 1024, settings)


def test_the_node_offers_containers_only_when_its_runtime_answered_at_start(tmp_path, stand_in, monkeypatch):
    client, _log = stand_in
    monkeypatch.setattr(containers, "find_runtime", lambda runtime, path: str(client))
    # the stand-in answers `docker info` (exit 0): image jobs may come here
    assert make_runner(tmp_path / "a", "docker").container_runtime_ready == "docker"
    assert node_labels({"rack": "r1"}, "docker") == {"rack": "r1", CONTAINER_RUNTIME_LABEL: "docker"}
    # a runtime that does not answer, or none configured: the node does not say it runs containers
    client.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    assert make_runner(tmp_path / "b", "docker").container_runtime_ready is None
    assert make_runner(tmp_path / "c", None).container_runtime_ready is None
    assert node_labels({"rack": "r1"}, None) == {"rack": "r1"}


async def test_the_supervisor_runs_the_client_with_the_agents_command_line_and_removes_the_container(
    tmp_path, stand_in, monkeypatch
):
    client, log = stand_in
    monkeypatch.setenv("GPUFLEET_AGENT_TOKEN", SECRET)
    runner = make_runner(tmp_path / "state", "docker")
    runner.container_binary = str(client)
    job_id = str(uuid.uuid4())
    job = await runner.spawn(
        job_id,
        'echo "in the image: $HOME $CUDA_VISIBLE_DEVICES $SEED"; exit 3',
        [2],
        image="docker.io/library/busybox:1.36",
        gpu_uuids=["GPU-abc"],
        submitter_env={"SEED": "42"},
    )
    env_file = runner.control_root / job_id / ENV_FILE
    assert env_file.stat().st_mode & 0o777 == 0o600
    done = await asyncio.wait_for(job.wait(), WAIT)
    assert done.exit_code == 3 and "in the image: /job 0 42" in done.output_tail, done.output_tail
    run, remove = calls(log)
    argv = run["argv"]
    assert argv[argv.index("--gpus") + 1] == '"device=GPU-abc"'
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--env-file") + 1] == str(env_file)
    assert argv[argv.index("--volume") + 1] == f"{runner.jobs_root / job_id}:/job"
    if runner.is_root:
        uid = job.spec["uid"]
        assert argv[argv.index("--user") + 1] == f"{uid}:{uid}"
    assert argv[-3:] == ["docker.io/library/busybox:1.36", "-c", job.spec["command"]]
    assert "SEED=42" not in " ".join(argv) and "42" not in argv  # values only in the env file
    assert f"GPUFLEET_JOB_ID={job_id}\n" in run["env_file"] and SECRET not in run["env_file"]
    # The client has the agent's runtime settings only: neither the agent's secrets nor the job's values.
    assert SECRET not in json.dumps(run["env"]) and "SEED" not in run["env"]
    assert remove["argv"] == ["rm", "--force", f"gpufleet-{job_id}"]
    job.release()
    assert not env_file.exists()


async def test_a_cancelled_container_job_is_stopped_and_its_container_removed(tmp_path, stand_in):
    client, log = stand_in
    runner = make_runner(tmp_path / "state", "docker", gpus=False)  # as with simulated GPUs
    runner.container_binary = str(client)
    job_id = str(uuid.uuid4())
    job = await runner.spawn(job_id, "echo up; sleep 300", [0], image="busybox")
    async with asyncio.timeout(WAIT):
        while "up" not in job.output_tail():
            await asyncio.sleep(0.05)
    await job.terminate(1.0)
    done = await asyncio.wait_for(job.wait(), WAIT)
    assert done.exit_code is not None and done.exit_code != 0
    run, _remove = calls(log)
    assert [c["argv"][0] for c in calls(log)] == ["run", "rm"]
    assert "--gpus" not in run["argv"] and "CUDA_VISIBLE_DEVICES=0\n" in run["env_file"]
    job.release()


async def test_the_agent_removes_the_container_of_a_job_whose_supervisor_died(tmp_path, stand_in):
    client, log = stand_in
    runner = make_runner(tmp_path / "state", "docker")
    if runner.cgroup_problem:
        pytest.skip(f"no job cgroups here ({runner.cgroup_problem}): the client would outlive the test")
    runner.container_binary = str(client)
    job = await runner.spawn(str(uuid.uuid4()), "echo up; sleep 300", [0], image="busybox")
    async with asyncio.timeout(WAIT):
        while "up" not in job.output_tail():
            await asyncio.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    done = await asyncio.wait_for(job.wait(), WAIT)
    assert done.error == SUPERVISOR_LOST_MESSAGE
    assert [c["argv"][0] for c in calls(log)] == ["run", "rm"]
    job.release()


# -- a real runtime --------------------------------------------------------------------------------

IMAGE = os.environ.get("GPUFLEET_TEST_IMAGE", "docker.io/library/busybox")


def runtime_or_skip(runtime: containers.Runtime) -> str:
    problem = containers.answers(runtime)
    if problem:
        pytest.skip(f"no {runtime} to run containers with here: {problem}")
    binary = containers.find_runtime(runtime, os.environ.get("PATH", ""))
    assert binary is not None
    if problem := _cannot_run_containers(binary):
        pytest.skip(f"{runtime} answers but cannot run a container here: {problem}")
    return binary


@functools.cache
def _cannot_run_containers(binary: str) -> str:
    """Why a plain ``run --rm IMAGE true`` fails (a sandbox that forbids what the OCI runtime needs, e.g.
    crun's setrlimit; no image and no registry), or "" when it works. The agent's own flags are not
    used here: a failure that comes from them fails the tests instead of skipping them."""
    try:
        done = subprocess.run(
            [binary, "run", "--rm", IMAGE, "true"], capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        return "a plain `run` did not finish within 300 s"
    if done.returncode == 0:
        return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"a plain `run` exited {done.returncode}: {lines[-1] if lines else 'no output'}"


def container_exists(binary: str, name: str) -> bool:
    done = subprocess.run(
        [binary, "ps", "--all", "--quiet", "--filter", f"name=^{name}$"], capture_output=True, check=True
    )
    return bool(done.stdout.strip())


@pytest.mark.parametrize("runtime", containers.RUNTIMES)
async def test_a_job_runs_in_its_image_without_network_and_is_removed_after(tmp_path, runtime):
    binary = runtime_or_skip(runtime)
    runner = make_runner(tmp_path / "state", runtime)
    job_id = str(uuid.uuid4())
    job = await runner.spawn(
        job_id,
        'echo "job=$GPUFLEET_JOB_ID"; id -u; echo "== links"; tail -n +3 /proc/net/dev | cut -d: -f1',
        [],
        image=IMAGE,
    )
    done = await asyncio.wait_for(job.wait(), 300)  # a first pull may take a while
    out = done.output_tail
    assert done.exit_code == 0, out
    assert f"job={job_id}" in out, out
    # --network none: a loopback device and nothing else, so no route to the control plane or anywhere.
    assert [link.strip() for link in out.split("== links\n")[1].splitlines()] == ["lo"], out
    if runner.is_root:
        assert f"\n{job.spec['uid']}\n" in out, out
    assert not container_exists(binary, f"gpufleet-{job_id}")
    job.release()


@pytest.mark.parametrize("runtime", containers.RUNTIMES)
async def test_cancelling_a_container_job_stops_its_container(tmp_path, runtime):
    binary = runtime_or_skip(runtime)
    runner = make_runner(tmp_path / "state", runtime)
    job_id = str(uuid.uuid4())
    job = await runner.spawn(job_id, "echo up; trap '' TERM; sleep 300", [], image=IMAGE)
    ended = asyncio.ensure_future(job.wait())
    async with asyncio.timeout(300):
        while "up" not in job.output_tail():
            if ended.done():  # the container never started: say why instead of waiting out the timeout
                pytest.fail(f"the job ended before its container ran: {ended.result()}")
            await asyncio.sleep(0.1)
    await job.terminate(1.0)  # it ignores SIGTERM: killed after the grace
    done = await asyncio.wait_for(ended, WAIT)
    assert done.exit_code is not None and done.exit_code != 0
    assert not container_exists(binary, f"gpufleet-{job_id}")
    job.release()
