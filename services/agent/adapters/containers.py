"""Running a job's command in a container image (``Assignment.image``) with docker or podman.

The job's supervisor runs the runtime's client in the foreground (``<runtime> run --rm …``): its output
is the job's output, its exit code the command's, and a SIGTERM to it reaches the container (the
clients proxy signals; ``--init`` passes them on to every process there). After it ends, or is killed
past the grace, the supervisor runs ``<runtime> rm --force`` so nothing of the job is left running.

What the container gets: only the job's GPUs (``--gpus "device=<uuid>,…"``, docker with the NVIDIA
Container Toolkit; ``--device nvidia.com/gpu=<uuid>``, podman with CDI), no network (``--network none``
unless the operator names another), the job's environment from the same allowlist as a host job (in an
env file, never on a command line), its working folder at ``/job``, its uid when the agent is root, no
capabilities, no-new-privileges and the CPU and memory limits of the request. Its ``/tmp`` is the
image's own, removed with the container.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from shared.contracts.limits import IMAGE_PATTERN, MAX_IMAGE

from ..domain.model import Limits
from .sandbox import SAFE_PATH

Runtime = Literal["docker", "podman"]
RUNTIMES: tuple[Runtime, ...] = ("docker", "podman")
CONTAINER_WORKDIR = "/job"
# The agent's own settings of its runtime's client (which daemon, which credentials), passed on to it;
# never the job's: a job's DOCKER_CONFIG could make the client run a credential helper of its choosing.
CLIENT_ENV = (
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "CONTAINERS_CONF",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
)
_IMAGE = re.compile(IMAGE_PATTERN)


def container_name(job_id: str) -> str:
    return f"gpufleet-{job_id}"


def check_image(image: str) -> None:
    """ValueError unless ``image`` is one well-formed reference (never an option, never two words)."""
    if len(image) > MAX_IMAGE or not _IMAGE.match(image):
        raise ValueError(f"the container image {image!r} is not an image reference")


def container_environment(env: Mapping[str, str], gpu_count: int) -> dict[str, str]:
    """A host job's environment as the container sees it: its folder is /job, its /tmp its own, and
    its GPUs are numbered from 0 there (the runtime shows it only its own)."""
    inside = dict(env)
    inside["HOME"] = CONTAINER_WORKDIR
    inside["TMPDIR"] = "/tmp"
    inside["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(gpu_count))
    return inside


def env_file_text(env: Mapping[str, str]) -> str:
    """``NAME=value`` lines (docker's and podman's ``--env-file``); ValueError on a line break in one."""
    lines = []
    for key, value in sorted(env.items()):
        if any(c in key + value for c in "\n\r") or not key or key[0].isspace() or "=" in key:
            raise ValueError(
                f"the variable {key!r} holds a line break: a container job's variables are one line each"
            )
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def run_argv(
    runtime: Runtime,
    binary: str,
    *,
    job_id: str,
    image: str,
    command: str,
    gpu_uuids: Sequence[str],
    workdir: Path,
    env_file: Path,
    uid: int | None,
    gid: int | None,
    limits: Limits | None,
    network: str = "none",
) -> list[str]:
    """The client's command line that runs ``/bin/sh -c <command>`` in ``image`` as the job."""
    check_image(image)
    argv = [
        binary,
        "run",
        "--rm",
        "--name",
        container_name(job_id),
        "--label",
        f"io.gpufleet.job-id={job_id}",
        "--init",
        "--network",
        network,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--env-file",
        str(env_file),
        "--volume",
        f"{workdir}:{CONTAINER_WORKDIR}",
        "--workdir",
        CONTAINER_WORKDIR,
    ]
    if uid is not None:
        argv += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if limits and limits.memory_mb:
        argv += ["--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m"]
    if limits and limits.cpus:
        argv += ["--cpus", f"{limits.cpus:g}"]
    if gpu_uuids:
        if runtime == "docker":
            # The value is CSV to docker: the quotes keep "device=a,b" one field.
            argv += ["--gpus", f'"device={",".join(gpu_uuids)}"']
        else:
            for uuid in gpu_uuids:
                argv += ["--device", f"nvidia.com/gpu={uuid}"]
    # The image's ENTRYPOINT is replaced (as Kubernetes' command does): the command means what it means
    # on the host, whatever the image's entry point would have done with it.
    argv += ["--entrypoint", "/bin/sh", image, "-c", command]
    return argv


def remove_argv(runtime: Runtime, binary: str, job_id: str) -> list[str]:
    argv = [binary, "rm", "--force"]
    if runtime == "podman":
        argv += ["--time", "0"]  # SIGKILL at once, as docker's rm --force does
    return [*argv, container_name(job_id)]


def client_environment(agent_env: Mapping[str, str], path: str) -> dict[str, str]:
    env = {k: agent_env[k] for k in CLIENT_ENV if k in agent_env}
    env["PATH"] = path
    return env


def find_runtime(runtime: Runtime, path: str) -> str | None:
    """The client's absolute path (looked up once, in the agent's safe PATH), or None."""
    return shutil.which(runtime, path=path)


def runtime_problem(binary: str | None, runtime: Runtime, env: Mapping[str, str]) -> str | None:
    """None when ``<runtime> info`` answers, else why not (logged at the agent's start)."""
    if binary is None:
        return f"{runtime} is not installed (not found in PATH)"
    try:
        done = subprocess.run(
            [binary, "info"],
            env=dict(env),
            capture_output=True,
            timeout=20,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{runtime} info` failed: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return f"`{runtime} info` exited {done.returncode}: {lines[-1] if lines else 'no output'}"
    return None


def answers(runtime: Runtime) -> str | None:
    """None when ``runtime`` is installed and answers as the agent would call it, else why not."""
    binary = find_runtime(runtime, SAFE_PATH)
    return runtime_problem(binary, runtime, client_environment(os.environ, SAFE_PATH))
