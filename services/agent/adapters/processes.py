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


class ProcessJob:
    def __init__(self, process: asyncio.subprocess.Process, tail: OutputTail) -> None:
        self._process = process
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
    def __init__(self, state_dir: Path, output_tail_bytes: int, base_env: Mapping[str, str] | None = None) -> None:
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
            "/bin/sh", "-c", command,
            cwd=workdir, env=job_environment(self._base_env, job_id, gpu_indices),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return ProcessJob(process, OutputTail(self.output_tail_bytes))
