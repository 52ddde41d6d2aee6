"""Jobs as sandboxed local processes, each under its own supervisor (see shim.py and sandbox.py).

Per job the agent keeps a control folder ``<state>/shims/<job id>/`` (0700, the agent's only): the
spec it hands the supervisor, the supervisor's pid, the job's output and, once the job's last process
is gone, its exit record. That folder is what lets a restarted agent take its jobs back (:meth:`adopt`).
The job's working folder is elsewhere (``jobs_root/<job id>``), 0700 and owned by the job's uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..domain.model import SUPERVISOR_LOST_MESSAGE, Distributed, JobExit, Limits, LocalJob
from ..domain.output_tail import OutputTail
from . import sandbox
from .cgroups import CgroupHost, JobCgroup
from .shim import EXIT, OUTPUT, PID, READY, SPEC

log = logging.getLogger("gpufleet.agent.jobs")

POLL_SECONDS = 0.1  # where no pidfd tells us the supervisor exited (older kernels)
EXIT_RECHECK_SECONDS = 1.0  # with a pidfd: only a safety net, the exit wakes us at once
UID_SCAN_SECONDS = 30.0  # how old the list of uids seen running in /proc may be when a uid is picked
SHIM_MODULE = "services.agent.adapters.shim"
# -S: no site (no .pth files, no site-packages): the supervisor needs only the stdlib and this source
# tree (PYTHONPATH), and skipping site halves the interpreter's start, paid once per job.
SHIM_ARGV = (sys.executable, "-S", "-m", SHIM_MODULE)
Network = Literal["none", "host"]


@dataclass(frozen=True)
class SandboxSettings:
    jobs_root: Path | None = None  # None: sandbox.default_jobs_root
    network: Network = "none"
    uid_first: int = 200_000
    uid_last: int = 265_535
    cgroup_parent: str = "gpufleet"
    lang: str = "C.UTF-8"


class ProcessJob:
    """One job, followed through its supervisor's control folder (started here or adopted)."""

    def __init__(
        self,
        runner: ProcessRunner,
        spec: dict[str, Any],
        control: Path,
        shim_pid: int,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.runner, self.spec, self.control = runner, spec, control
        self.pid = shim_pid
        self._process = process  # None when adopted: the supervisor is not our child
        self._gone: asyncio.Event | None = None  # set when the supervisor's pidfd says it exited
        self._pidfd: int | None = None  # None: not tried yet; -1: none (polling)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def job_id(self) -> str:
        return str(self.spec["job_id"])

    def cgroup(self) -> JobCgroup | None:
        return self.runner.cgroups.job(self.job_id) if self.spec["cgroup"] else None

    def supervisor_alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return _is_supervisor(self.pid, self.control)

    def exit_record(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.control / EXIT).read_text()))
        except (OSError, ValueError):
            return None

    def _follow_exit(self) -> asyncio.Event | None:
        """An event set when the supervisor exits (it records the exit just before), from a pidfd the
        event loop watches; None where the kernel has no pidfds: the callers then poll."""
        if self._gone is not None or self._pidfd is not None:
            return self._gone
        try:
            fd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self._pidfd = -1
            return None
        # Opened, then checked: a pid reused since the supervisor's exit is not taken for it (a pidfd
        # of an exited child of ours still refers to it until we reap it).
        if self._process is None and not _is_supervisor(self.pid, self.control):
            os.close(fd)
            self._pidfd = -1
            return None
        loop, gone = asyncio.get_running_loop(), asyncio.Event()
        self._pidfd, self._gone, self._loop = fd, gone, loop

        def exited() -> None:
            self._close_pidfd()
            gone.set()

        loop.add_reader(fd, exited)
        return gone

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, -1
        if fd is not None and fd >= 0:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(fd)
            os.close(fd)

    async def _until_supervisor_exits(self, poll: float) -> None:
        """Return when the supervisor exits or after a while, whichever comes first."""
        gone = self._follow_exit()
        if gone is None:
            await asyncio.sleep(poll)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_RECHECK_SECONDS):
                await gone.wait()

    async def wait(self) -> JobExit:
        while (record := self.exit_record()) is None:
            if not self.supervisor_alive():
                record = self.exit_record() or {"error": SUPERVISOR_LOST_MESSAGE}
                break
            await self._until_supervisor_exits(POLL_SECONDS)
        if "exit_code" not in record:
            self.kill_remnants()  # the supervisor died: nobody else will end what it watched
        return JobExit(
            exit_code=record.get("exit_code"),
            output_tail=self.output_tail(),
            signal_name=record.get("signal"),
            finished_at=datetime.fromisoformat(record["finished_at"]) if "finished_at" in record else None,
            error=record.get("error", ""),
        )

    def output_tail(self) -> str:
        limit = self.runner.output_tail_bytes
        try:
            with open(self.control / OUTPUT, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - limit))
                return OutputTail.of_end(limit, f.read(limit), size).text()
        except OSError:
            return ""

    async def terminate(self, grace_seconds: float) -> None:
        """SIGTERM every process of the job (through its supervisor), SIGKILL them after the grace."""
        if self.exit_record() is not None:
            return
        try:
            async with asyncio.timeout(grace_seconds):
                while not (self.control / READY).exists() and self.supervisor_alive():
                    await asyncio.sleep(POLL_SECONDS / 10)  # a shim still starting would die of SIGTERM
                self._signal_supervisor(signal.SIGTERM)
                while self.exit_record() is None and self.supervisor_alive():
                    await self._until_supervisor_exits(POLL_SECONDS)
                return
        except TimeoutError:
            log.warning(
                "job ignored SIGTERM; killing it", extra={"job_id": self.job_id, "grace_s": grace_seconds}
            )
        if not self._signal_supervisor(signal.SIGUSR1):
            self.kill_remnants()

    def annotate(self, line: str) -> None:
        """Add a line from the agent to the job's output (the job's own tail then shows it)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.control / OUTPUT, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, f"\n[gpufleet] {line}\n".encode())
            finally:
                os.close(fd)

    def _signal_supervisor(self, sig: signal.Signals) -> bool:
        if not self.supervisor_alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        return True

    def kill_remnants(self) -> None:
        cgroup = self.cgroup()
        if cgroup and cgroup.exists():
            cgroup.kill_all()
            with contextlib.suppress(OSError):
                cgroup.remove()

    def release(self) -> None:
        """Forget the job (its report is queued): remove what the supervisor did not, free its uid."""
        self._close_pidfd()
        self.kill_remnants()
        shutil.rmtree(self.spec["workdir"], ignore_errors=True)
        shutil.rmtree(self.control, ignore_errors=True)
        if self.spec["uid"] is not None:
            self.runner.uids.release(int(self.spec["uid"]))


class ProcessRunner:
    def __init__(
        self, state_dir: Path, output_tail_bytes: int, sandbox_settings: SandboxSettings | None = None
    ) -> None:
        s = sandbox_settings or SandboxSettings()
        self.output_tail_bytes, self.settings = output_tail_bytes, s
        self.is_root = os.geteuid() == 0
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)  # the report queue and control folders are nobody else's business
        self.control_root = state_dir / "shims"
        self.control_root.mkdir(mode=0o700, exist_ok=True)
        self.jobs_root = (s.jobs_root or sandbox.default_jobs_root(self.is_root)).absolute()
        if self.jobs_root == state_dir.absolute() or state_dir.absolute() in self.jobs_root.parents:
            raise ValueError(f"the jobs folder {self.jobs_root} must be outside the state folder {state_dir}")
        sandbox.prepare_jobs_root(self.jobs_root, self.is_root)
        self.uids = sandbox.UidPool(s.uid_first, s.uid_last)
        self._uids_seen: tuple[float, set[int]] = (-UID_SCAN_SECONDS, set())
        self.cgroups = CgroupHost(s.cgroup_parent)
        self.cgroup_problem = self.cgroups.usable()
        self.kernel = _probe()
        self._announce()

    def _announce(self) -> None:
        network = self.settings.network == "none"
        extra = {
            "root": self.is_root,
            "jobs_root": str(self.jobs_root),
            "cgroup_version": self.cgroups.version if not self.cgroup_problem else None,
            "pid_namespace": self.kernel.get("pid") is None and self.is_root,
            "network": self.settings.network,
        }
        log.info("job sandbox", extra=extra)
        if self.cgroup_problem:
            log.warning(
                "job cgroups unavailable (%s): tracking jobs by process tree under a subreaper instead; "
                "no CPU or memory limits",
                self.cgroup_problem,
                extra={"reason": self.cgroup_problem},
            )
        if not self.is_root:
            log.warning(
                "agent not root: jobs run as the agent's uid; they can read each other's folders and the "
                "agent's state folder, and see every process",
            )
        if network and self.kernel.get("network"):
            log.warning(
                "jobs cannot get their own network namespace (%s): they share the host's network, the "
                "control plane's ports included",
                self.kernel["network"],
                extra={"reason": self.kernel["network"]},
            )

    async def spawn(
        self,
        job_id: str,
        command: str,
        gpu_indices: Sequence[int],
        *,
        organization_id: str | None = None,
        submitter_env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        distributed: Distributed | None = None,
        attempt: int = 0,
        time_limit_seconds: int = 0,
    ) -> ProcessJob:
        # The id names folders: only a well-formed UUID may do that (no "../" from a confused scheduler).
        try:
            job_id = str(uuid.UUID(job_id))
        except ValueError:
            raise ValueError(f"the job id {job_id!r} is not a UUID") from None
        job = LocalJob(
            job_id,
            tuple(gpu_indices),
            organization_id,
            attempt=attempt,
            time_limit_seconds=time_limit_seconds,
            started_at=datetime.now(UTC),
        )
        return await asyncio.to_thread(self._start, job, command, submitter_env, limits, distributed)

    def _start(
        self,
        job: LocalJob,
        command: str,
        submitter_env: Mapping[str, str] | None,
        limits: Limits | None,
        distributed: Distributed | None,
    ) -> ProcessJob:
        job_id = job.job_id
        control = self.control_root / job_id
        control.mkdir(mode=0o700)  # FileExistsError: this job already has a supervisor here
        uid = self.uids.take(self._uids_running()) if self.is_root else None
        workdir = self.jobs_root / job_id
        spec = self._spec(job, command, submitter_env, distributed, uid, workdir)
        try:
            workdir.mkdir(mode=0o700)
            if uid is not None:
                os.chown(workdir, uid, uid)
            if spec["cgroup"]:
                self.cgroups.job(job_id).create(limits or Limits())
            (control / SPEC).write_text(json.dumps(spec))
            with open(control / "shim.log", "ab") as shim_log:
                process = subprocess.Popen(
                    [*SHIM_ARGV, str(control)],
                    stdin=subprocess.DEVNULL,
                    stdout=shim_log,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    env={"PATH": sandbox.SAFE_PATH, "PYTHONPATH": str(_source_root())},
                    start_new_session=True,  # neither the agent's signals nor its terminal reach it
                )
            (control / PID).write_text(str(process.pid))
        except BaseException:
            ProcessJob(self, spec, control, 0).release()
            raise
        return ProcessJob(self, spec, control, process.pid, process)

    def _uids_running(self) -> set[int]:
        """The uids of /proc's processes, rescanned at most every UID_SCAN_SECONDS (not per job: the scan
        reads every process's status). Our own jobs' uids are in the pool's held set, always current; the
        scan is for other holders (a previous agent's job), which do not appear between two scans."""
        at, seen = self._uids_seen
        if time.monotonic() - at >= UID_SCAN_SECONDS:
            seen = sandbox.uids_running()
            self._uids_seen = (time.monotonic(), seen)
        return seen

    def _spec(
        self,
        job: LocalJob,
        command: str,
        submitter_env: Mapping[str, str] | None,
        distributed: Distributed | None,
        uid: int | None,
        workdir: Path,
    ) -> dict[str, Any]:
        isolate_network = self.settings.network == "none" and self.kernel.get("network") is None
        env = sandbox.job_environment(
            job.job_id, job.gpu_indices, workdir, self.settings.lang, submitter_env, distributed
        )
        return {
            "job_id": job.job_id,
            "command": command,
            "gpu_indices": list(job.gpu_indices),
            "organization_id": job.organization_id,
            # What a restarted agent needs to keep enforcing the job's time limit from its real start.
            "attempt": job.attempt,
            "time_limit_seconds": job.time_limit_seconds,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "env": env,
            "workdir": str(workdir),
            "uid": uid,
            "gid": uid,
            "cgroup": self.cgroup_problem is None,
            "cgroup_parent": self.settings.cgroup_parent,
            "isolate_pids": self.is_root and self.kernel.get("pid") is None,
            "isolate_network": isolate_network,
            "user_namespace": isolate_network and not self.is_root,
        }

    def adopt(self) -> list[tuple[LocalJob, ProcessJob]]:
        """Take back the jobs a previous agent process left with their supervisors.

        A job whose supervisor still runs, or that recorded its exit, is followed again; one whose
        supervisor is gone without a record is killed (its cgroup) and forgotten: the agent then reports
        it lost, as it does for any start it cannot account for."""
        adopted = []
        for control in sorted(p for p in self.control_root.iterdir() if p.is_dir()):
            try:
                spec = json.loads((control / SPEC).read_text())
            except (OSError, ValueError):
                # The agent died while starting this job, before its supervisor could exist.
                spec = {"job_id": control.name, "workdir": str(self.jobs_root / control.name), "uid": None}
                spec["cgroup"] = self.cgroup_problem is None
                ProcessJob(self, spec, control, 0).release()
                continue
            try:
                pid = int((control / PID).read_text())
            except (OSError, ValueError):
                pid = _find_supervisor(control) or 0
            job = ProcessJob(self, spec, control, pid)
            if job.exit_record() is None and not job.supervisor_alive():
                log.warning(
                    "a job's supervisor is gone; killing what is left of it", extra={"job_id": job.job_id}
                )
                job.release()
                continue
            if spec["uid"] is not None:
                self.uids.hold(int(spec["uid"]))
            log.info(
                "took back a job left running by a previous agent", extra={"job_id": job.job_id, "pid": pid}
            )
            adopted.append((_local_job(spec), job))
        return adopted


def _local_job(spec: dict[str, Any]) -> LocalJob:
    """The job a control folder's spec describes (specs written before time limits lack those keys)."""
    started = spec.get("started_at")
    return LocalJob(
        str(spec["job_id"]),
        tuple(spec["gpu_indices"]),
        spec.get("organization_id"),
        attempt=int(spec.get("attempt") or 0),
        time_limit_seconds=int(spec.get("time_limit_seconds") or 0),
        started_at=datetime.fromisoformat(started) if started else None,
    )


def _is_supervisor(pid: int, control: Path) -> bool:
    """Guard against pid reuse: the process must be a live shim of this very control folder."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and str(control).encode() in argv


def _find_supervisor(control: Path) -> int | None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        if _is_supervisor(pid, control):
            return pid
    return None


def _source_root() -> Path:
    """The folder holding the ``services`` package (the shim imports it from a source tree too)."""
    return Path(__file__).resolve().parents[3]


def _probe() -> dict[str, str | None]:
    """Ask a throwaway shim which namespaces this kernel grants (never unshare the agent itself)."""
    try:
        done = subprocess.run(
            [*SHIM_ARGV, "--probe"],
            capture_output=True,
            timeout=30,
            env={"PATH": sandbox.SAFE_PATH, "PYTHONPATH": str(_source_root())},
            check=True,
        )
        return dict(json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"pid": f"probe failed: {exc}", "network": f"probe failed: {exc}"}
