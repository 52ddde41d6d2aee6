"""Jobs as local processes: ``/bin/sh -c <command>`` in a session of its own.

Its own session (hence its own process group) lets a cancel reach everything the command started,
and keeps the terminal's Ctrl-C away from jobs. The agent's secrets are not handed to tenant code: every
``GPUFLEET_*`` variable is removed from the job's environment (the agent token among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..domain.model import JobExit
from ..domain.output_tail import OutputTail

log = logging.getLogger("gpufleet.agent.jobs")

READ_CHUNK = 64 * 1024
# After the shell exits, how long a background child may keep the output pipe open before we stop reading.
DRAIN_SECONDS = 2.0


def job_environment(base: Mapping[str, str], job_id: str, gpu_indices: Sequence[int]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("GPUFLEET_")}
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_indices)
    # CUDA numbers devices fastest-first by default; NVML (and so fleet's indices) by PCI bus id.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["GPUFLEET_JOB_ID"] = job_id
    return env


PID_FILE = "pgid"


def _belongs_to_job(pid: int, job_id: str) -> bool:
    """Guard against pid reuse: the process must still carry the job's id in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"GPUFLEET_JOB_ID={job_id}".encode() in environ.split(b"\0")


def kill_leftovers(jobs_dir: Path) -> list[str]:
    """Kill the process groups of jobs started by an agent that died without stopping them.

    An agent killed outright (SIGKILL, OOM, power loss of the agent alone) leaves its jobs running in
    their own sessions; the restarted agent reports them lost, so their GPUs go back to the scheduler
    and must really be free. Returns the ids of the jobs whose processes were killed."""
    killed = []
    for pid_file in sorted(jobs_dir.glob(f"*/{PID_FILE}")):
        job_id = pid_file.parent.name
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if _belongs_to_job(pid, job_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed.append(job_id)
                log.warning(
                    "killed a job left running by a previous agent", extra={"job_id": job_id, "pgid": pid}
                )
        pid_file.unlink(missing_ok=True)
    return killed


class ProcessJob:
    def __init__(
        self, process: asyncio.subprocess.Process, tail: OutputTail, pid_file: Path | None = None
    ) -> None:
        self._process = process
        self._pid_file = pid_file
        self.pid = process.pid
        self._tail = tail
        self._reader = asyncio.create_task(self._read())
        self._exited = asyncio.Event()

    async def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        while chunk := await stream.read(READ_CHUNK):
            self._tail.feed(chunk)

    async def wait(self) -> JobExit:
        code = await self._process.wait()
        self._exited.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), DRAIN_SECONDS)
        except TimeoutError:
            self._reader.cancel()
        # Whatever the command left behind in its group would keep holding the GPUs: end it with the job.
        self._signal_group(signal.SIGKILL)
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
        if code < 0:
            sig = signal.Signals(-code)
            return JobExit(exit_code=128 + sig.value, output_tail=self._tail.text(), signal_name=sig.name)
        return JobExit(exit_code=code, output_tail=self._tail.text())

    async def terminate(self, grace_seconds: float) -> None:
        if self._process.returncode is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._exited.wait(), grace_seconds)
        except TimeoutError:
            log.warning("job ignored SIGTERM; killing it", extra={"pid": self.pid, "grace_s": grace_seconds})
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)  # start_new_session: the group id is the leader's pid


class ProcessRunner:
    def __init__(
        self, state_dir: Path, output_tail_bytes: int, base_env: Mapping[str, str] | None = None
    ) -> None:
        self.jobs_dir = state_dir / "jobs"
        self.output_tail_bytes = output_tail_bytes
        self._base_env = dict(os.environ if base_env is None else base_env)

    async def spawn(self, job_id: str, command: str, gpu_indices: Sequence[int]) -> ProcessJob:
        # The id names a folder: only a well-formed UUID may do that (no "../" from a confused scheduler).
        try:
            workdir = self.jobs_dir / str(uuid.UUID(job_id))
        except ValueError:
            raise ValueError(f"the job id {job_id!r} is not a UUID") from None
        workdir.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=workdir,
            env=job_environment(self._base_env, job_id, gpu_indices),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        pid_file = workdir / PID_FILE  # lets a restarted agent find and kill what a dead one left running
        pid_file.write_text(str(process.pid))
        return ProcessJob(process, OutputTail(self.output_tail_bytes), pid_file)

    def kill_leftovers(self) -> list[str]:
        return kill_leftovers(self.jobs_dir) if self.jobs_dir.exists() else []
