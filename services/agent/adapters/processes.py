"""Jobs as sandboxed local processes, each under its own supervisor (see shim.py and sandbox.py).

Per job the agent keeps a control folder ``<state>/shims/<job id>/`` (0700, the agent's only): the
spec it hands the supervisor, the supervisor's pid, the job's output and, once the job's last process
is gone, its exit record. That folder is what lets a restarted agent take its jobs back (:meth:`adopt`).
The job's working folder is elsewhere (``jobs_root/<job id>``), 0700 and owned by the job's uid; its
private ``/tmp`` and ``/var/tmp`` are folders inside it (sandbox.py), so they go with it.
A job naming a container image runs there instead (containers.py), when the agent has a runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
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
from . import containers, forkserver, host, sandbox
from .cgroups import CgroupHost, JobCgroup, char_majors, device_rules
from .shim import EXIT, OUTPUT, PID, READY, SPEC, remove_container

log = logging.getLogger("gpufleet.agent.jobs")

POLL_SECONDS = 0.1  # where no pidfd tells us the supervisor exited (older kernels)
EXIT_RECHECK_SECONDS = 1.0  # with a pidfd: only a safety net, the exit wakes us at once
UID_SCAN_SECONDS = 30.0  # how old the list of uids seen running in /proc may be when a uid is picked
SHIM_MODULE = "services.agent.adapters.shim"
# -S: no site (no .pth files, no site-packages): the supervisor needs only the stdlib and this source
# tree (PYTHONPATH), and skipping site halves the interpreter's start, paid once per job.
SHIM_ARGV = (sys.executable, "-S", "-m", SHIM_MODULE)
Network = Literal["none", "host"]
ENV_FILE = "container.env"  # the container job's variables, in its control folder (the agent's only)
PROC_DEVICES = Path("/proc/devices")


def no_runtime_message(image: str) -> str:
    return (
        f"the job names the container image {image!r}, but this node runs no container runtime "
        "(GPUFLEET_AGENT_CONTAINER_RUNTIME is unset): it is not run on the host instead"
    )


@dataclass(frozen=True)
class SandboxSettings:
    jobs_root: Path | None = None  # None: sandbox.default_jobs_root
    network: Network = "none"
    uid_first: int = 200_000
    uid_last: int = 265_535
    cgroup_parent: str = "gpufleet"
    lang: str = "C.UTF-8"
    # Jobs naming an image run in it with this runtime; None: such jobs fail (never run on the host).
    container_runtime: containers.Runtime | None = None
    container_network: str = "none"  # docker's/podman's --network for container jobs
    # False (simulated GPUs): containers get no GPU flags (the runtime has no such devices to give).
    container_gpus: bool = True
    # Supervisors are forks of one prepared process (forkserver.py) rather than new interpreters;
    # False: always a new interpreter (what happens anyway for a start the fork server cannot serve).
    fork_server: bool = True


class ProcessJob:
    """One job, followed through its supervisor's control folder (started here or adopted)."""

    def __init__(
        self,
        runner: ProcessRunner,
        spec: dict[str, Any],
        control: Path,
        shim_pid: int,
        process: subprocess.Popen[bytes] | None = None,
        pidfd: int | None = None,
        cgroup: JobCgroup | None = None,
    ) -> None:
        self.runner, self.spec, self.control = runner, spec, control
        self.pid = shim_pid
        self._process = process  # None when adopted or forked: the supervisor is not our child
        self._given_pidfd = pidfd  # the fork server's pidfd of the supervisor (ours to close)
        self._gone: asyncio.Event | None = None  # set when the supervisor's pidfd says it exited
        self._pidfd: int | None = None  # None: not tried yet; -1: none (polling)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cgroup = cgroup  # worked out once, by the runner or on first use (its folders never change)

    @property
    def job_id(self) -> str:
        return str(self.spec["job_id"])

    def cgroup(self) -> JobCgroup | None:
        if not self.spec["cgroup"]:
            return None
        if self._cgroup is None:
            self._cgroup = self.runner.cgroups.job(self.job_id)
        return self._cgroup

    def supervisor_alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        fd = self._given_pidfd if self._given_pidfd is not None else self._pidfd
        if fd is not None and fd >= 0:
            return not select.select([fd], [], [], 0)[0]  # a pidfd is readable once its process ended
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
        fd, self._given_pidfd = self._given_pidfd, None
        if fd is None:  # a forked supervisor's pidfd names it for good; others are opened by pid
            try:
                fd = os.pidfd_open(self.pid)
            except (OSError, AttributeError):
                self._pidfd = -1
                return None
            # Opened, then checked: a pid reused since the supervisor's exit is not taken for it (a
            # pidfd of an exited child of ours still refers to it until we reap it).
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
        given, self._given_pidfd = self._given_pidfd, None
        if given is not None:
            os.close(given)

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
        if self.spec.get("container") and self.exit_record() is None:
            # The supervisor removes the container before it records the exit: without a record it
            # died first, and the container may still run (rare: this blocks, the call is short).
            remove_container(self.spec["container"])
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
        self.forkserver = (
            forkserver.ForkServer(sys.executable, _shim_env())
            if s.fork_server and hasattr(os, "pidfd_open")
            else None
        )
        self.cgroup_problem = self.cgroups.usable()
        # None: each job's cgroup allows its own GPUs' device nodes only.
        self.device_problem = self.cgroup_problem or self.cgroups.device_control()
        self.kernel = _probe()
        self.container_binary: str | None = None
        self.container_env: dict[str, str] = {}
        self.container_problem: str | None = None
        if s.container_runtime:
            self.container_binary = containers.find_runtime(s.container_runtime, sandbox.SAFE_PATH)
            self.container_env = containers.client_environment(os.environ, sandbox.SAFE_PATH)
            self.container_problem = containers.runtime_problem(
                self.container_binary, s.container_runtime, self.container_env
            )
        self._announce()

    @property
    def container_runtime_ready(self) -> str | None:
        """The container runtime this agent runs image jobs with, when it is installed and answered at
        start (``<runtime> info``); None otherwise. Registered as the node's
        ``gpufleet.io/container-runtime`` label: the scheduler sends image jobs only where it is set."""
        if self.settings.container_runtime and self.container_binary and not self.container_problem:
            return self.settings.container_runtime
        return None

    @property
    def private_mounts(self) -> bool:
        """Whether jobs get their own /tmp, /var/tmp and /dev/shm (a mount namespace), not only TMPDIR."""
        return self.kernel.get("mount") is None

    def _announce(self) -> None:
        network = self.settings.network == "none"
        extra = {
            "root": self.is_root,
            "jobs_root": str(self.jobs_root),
            "cgroup_version": self.cgroups.version if not self.cgroup_problem else None,
            "pid_namespace": self.kernel.get("pid") is None and self.is_root,
            "network": self.settings.network,
            "private_tmp": self.private_mounts,
            "gpu_device_cgroup": self.device_problem is None,
            "container_runtime": self.settings.container_runtime,
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
        if self.device_problem:
            log.warning(
                "jobs' GPUs are not fenced by a device cgroup (%s): a job can open every GPU's device "
                "node its permissions allow; CUDA_VISIBLE_DEVICES only hides the others",
                self.device_problem,
                extra={"reason": self.device_problem},
            )
        if not self.private_mounts:
            log.warning(
                "jobs cannot get their own /tmp (%s): TMPDIR names a private folder, but /tmp, /var/tmp "
                "and /dev/shm are the host's, shared with other jobs",
                self.kernel.get("mount"),
                extra={"reason": self.kernel.get("mount")},
            )
        if self.settings.container_runtime and self.container_problem:
            log.warning(
                "container runtime %s does not answer (%s): this node does not take jobs naming an image "
                "(restart the agent once the runtime answers)",
                self.settings.container_runtime,
                self.container_problem,
                extra={"reason": self.container_problem},
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
        image: str = "",
        gpu_uuids: Sequence[str] = (),
    ) -> ProcessJob:
        """Start the job; ``image``: in that container image (ValueError where this agent has no
        runtime); ``gpu_uuids``: its GPUs' UUIDs, by ``gpu_indices``' order (device nodes, containers)."""
        if image:
            containers.check_image(image)
            if self.settings.container_runtime is None:
                raise ValueError(no_runtime_message(image))
            if self.container_binary is None:
                raise ValueError(f"the container runtime {self.settings.container_runtime} is not installed")
        if gpu_uuids and len(gpu_uuids) != len(gpu_indices):
            raise ValueError("gpu_uuids must name each of gpu_indices")
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
        return await asyncio.to_thread(
            self._start, job, command, submitter_env, limits, distributed, image, tuple(gpu_uuids)
        )

    def _start(
        self,
        job: LocalJob,
        command: str,
        submitter_env: Mapping[str, str] | None,
        limits: Limits | None,
        distributed: Distributed | None,
        image: str = "",
        gpu_uuids: tuple[str, ...] = (),
    ) -> ProcessJob:
        job_id = job.job_id
        control = self.control_root / job_id
        control.mkdir(mode=0o700)  # FileExistsError: this job already has a supervisor here
        uid = self.uids.take(self._uids_running()) if self.is_root else None
        workdir = self.jobs_root / job_id
        spec: dict[str, Any] = {"job_id": job_id, "workdir": str(workdir), "uid": uid, "cgroup": False}
        try:
            cgroup = self.cgroups.job(job_id) if self.cgroup_problem is None else None
            spec = self._spec(job, command, submitter_env, distributed, uid, workdir, gpu_uuids, cgroup)
            if image:
                spec = self._container_spec(spec, image, gpu_uuids, limits, control)
            workdir.mkdir(mode=0o700)
            if uid is not None:
                os.chown(workdir, uid, uid)
            if not image:
                sandbox.make_private_tmp(workdir, uid)
            if spec["cgroup"] and cgroup is not None:
                # A container's limits are the runtime's (its flags): the group holds only its client.
                cgroup.create(Limits() if image else limits or Limits())
                if spec["devices"] is not None:
                    cgroup.restrict_devices(spec["devices"])
            (control / SPEC).write_text(json.dumps(spec))
            if self.forkserver is not None:
                try:
                    # The supervisor writes its own shim.pid ("<pid> <start time>") before anything else.
                    pid, _started, pidfd = self.forkserver.spawn(control)
                except forkserver.ForkServerUnavailable as exc:
                    log.warning(
                        "the supervisor fork server is unavailable; starting a new interpreter",
                        extra={"job_id": job_id, "reason": str(exc)},
                    )
                else:
                    return ProcessJob(self, spec, control, pid, pidfd=pidfd, cgroup=cgroup)
            with open(control / "shim.log", "ab") as shim_log:
                process = subprocess.Popen(
                    [*SHIM_ARGV, str(control)],
                    stdin=subprocess.DEVNULL,
                    stdout=shim_log,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    env=_shim_env(),
                    start_new_session=True,  # neither the agent's signals nor its terminal reach it
                )
            (control / PID).write_text(str(process.pid))
        except BaseException:
            ProcessJob(self, spec, control, 0).release()
            raise
        return ProcessJob(self, spec, control, process.pid, process, cgroup=cgroup)

    def close(self) -> None:
        """Stop the fork server (the supervisors it forked go on, as they do when the agent dies)."""
        if self.forkserver is not None:
            self.forkserver.close()

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
        gpu_uuids: Sequence[str] = (),
        cgroup: JobCgroup | None = None,
    ) -> dict[str, Any]:
        isolate_network = self.settings.network == "none" and self.kernel.get("network") is None
        binds, tmpdir = sandbox.private_tmp_plan(workdir, self.private_mounts)
        env = sandbox.job_environment(
            job.job_id, job.gpu_indices, workdir, self.settings.lang, submitter_env, distributed, tmpdir
        )
        devices = None
        if self.device_problem is None:
            majors = char_majors(PROC_DEVICES.read_text())
            devices = device_rules(self._gpu_minors(job, gpu_uuids), majors)
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
            **self._cgroup_spec(cgroup),
            "isolate_pids": self.is_root and self.kernel.get("pid") is None,
            "isolate_network": isolate_network,
            "user_namespace": (isolate_network or bool(binds)) and not self.is_root,
            "private_tmp": binds,
            "devices": devices,  # the device cgroup's allow rules; None: not fenced (device_problem)
            "container": None,
        }

    def _cgroup_spec(self, group: JobCgroup | None) -> dict[str, Any]:
        """The job group's folders, for its supervisor (which then need not find the hierarchies)."""
        if group is None:
            return {}
        return {
            "cgroup_version": group.version,
            "cgroup_dirs": {c: str(d) for c, d in group.by_controller.items()},
        }

    def _gpu_minors(self, job: LocalJob, gpu_uuids: Sequence[str]) -> list[int]:
        """The minors of the job's /dev/nvidia<N>: the driver's, by UUID; where the driver does not know
        them (simulated GPUs, or no UUID shown yet), by the convention /dev/nvidia<index>."""
        by_uuid = host.nvidia_minors()
        if gpu_uuids and all(u in by_uuid for u in gpu_uuids):
            return [by_uuid[u] for u in gpu_uuids]
        if by_uuid:
            log.warning(
                "the NVIDIA driver does not list this job's GPUs by UUID: fencing /dev/nvidia<index>",
                extra={"job_id": job.job_id, "gpu_uuids": list(gpu_uuids)},
            )
        return list(job.gpu_indices)

    def _container_spec(
        self,
        spec: dict[str, Any],
        image: str,
        gpu_uuids: Sequence[str],
        limits: Limits | None,
        control: Path,
    ) -> dict[str, Any]:
        """The spec of a job run in ``image``: the runtime's client is the job's process (shim.py)."""
        runtime, binary = self.settings.container_runtime, self.container_binary
        if runtime is None or binary is None:
            raise ValueError(no_runtime_message(image))
        job_id = str(spec["job_id"])
        env = containers.container_environment(spec["env"], len(spec["gpu_indices"]))
        env_file = control / ENV_FILE
        # The client reads it as the agent; values never appear on a command line (ps shows those).
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(containers.env_file_text(env))
        uuids = list(gpu_uuids) or [str(i) for i in spec["gpu_indices"]]
        if not self.settings.container_gpus:
            uuids = []
        argv = containers.run_argv(
            runtime,
            binary,
            job_id=job_id,
            image=image,
            command=str(spec["command"]),
            gpu_uuids=uuids,
            workdir=Path(spec["workdir"]),
            env_file=env_file,
            uid=spec["uid"],
            gid=spec["gid"],
            limits=limits,
            network=self.settings.container_network,
        )
        remove = containers.remove_argv(runtime, binary, job_id)
        return {
            **spec,
            "env": env,
            "image": image,
            "isolate_pids": False,
            "isolate_network": False,
            "user_namespace": False,
            "private_tmp": [],
            "devices": None,  # the runtime gives the container only its GPUs; its client needs them all
            "container": {"runtime": runtime, "argv": argv, "remove": remove, "env": self.container_env},
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
                pid = int((control / PID).read_text().split()[0])
            except (OSError, ValueError, IndexError):
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
    """Guard against pid reuse: the process must be a live shim of this very control folder. A forked
    supervisor (whose command line is the fork server's) is named by the pid and start time it wrote
    in ``shim.pid``; one started as its own interpreter has the folder on its command line."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return False
        recorded = (control / PID).read_text().split() if (control / PID).exists() else []
        if len(recorded) == 2 and int(recorded[0]) == pid:
            return int(fields[19]) == int(recorded[1])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError, ValueError):
        return False
    return str(control).encode() in argv


def _find_supervisor(control: Path) -> int | None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        if _is_supervisor(pid, control):
            return pid
    return None


def _shim_env() -> dict[str, str]:
    """A supervisor's whole environment (and the fork server's): none of the agent's settings."""
    return {"PATH": sandbox.SAFE_PATH, "PYTHONPATH": str(_source_root())}


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
