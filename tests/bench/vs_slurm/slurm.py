"""Slurm on this machine: the install check, a one-node config with fake GPUs, and the daemons.

Debian's ``slurm-wlm`` packages (22.05 on bookworm) and ``munge`` run here as plain daemons, no systemd:
:class:`SlurmCluster` writes ``slurm.conf``, ``gres.conf`` and a munge key into a temporary folder, makes
``N`` character devices (``mknod … c 195 i``, the major number of NVIDIA's devices) under a /dev-like
folder there for GRES to point at, and starts ``munged -F``, ``slurmctld -D`` and ``slurmd -D``, each
under :mod:`tests.bench.vs_slurm.reaper` (so the job steps' CPU time is charged to Slurm too), with
their pid, state, spool and log files in that folder. ``SlurmdParameters=config_overrides`` lets the
one node declare the N GPUs (and enough CPUs for N one-GPU jobs at once) that it does not have.

Two profiles: ``shipped`` sets only what this machine needs to run at all (one node, GRES, no cgroups,
``select/cons_tres`` so that jobs share the node) and keeps every scheduling default; ``tuned`` adds what
Slurm's high-throughput guide and its ``SchedulerParameters`` documentation offer for a stream of small
jobs (see :data:`TUNED`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.embedded.postgres import free_port
from tests.bench.vs_slurm.measure import JobTimes, Probe, kill_tree

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
APT_PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
APT_COMMAND = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)
NVIDIA_MAJOR = 195
NODE = "benchnode"


@dataclass(frozen=True)
class Profile:
    name: str
    settings: dict[str, str]


SHIPPED = Profile("slurm-shipped", {})
# batch_sched_delay=0 / sched_min_interval=0: schedule a batch job the moment it arrives or a GPU frees,
# not in a later batch (defaults 3 s and 2 us). default_queue_depth=10000: each of those quick passes
# looks at the whole queue, not the first 100. sched/builtin: plain priority order without the backfill
# thread, which a stream of identical untimed jobs gains nothing from. Logs at "error": no line per
# job on the daemons' hot paths.
TUNED = Profile(
    "slurm-tuned",
    {
        "SchedulerType": "sched/builtin",
        "SchedulerParameters": "batch_sched_delay=0,sched_min_interval=0,default_queue_depth=10000",
        "SlurmctldDebug": "error",
        "SlurmdDebug": "error",
    },
)
PROFILES = {p.name: p for p in (SHIPPED, TUNED)}


def missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_installed() -> None:
    """Install Slurm and munge with apt when run as root; otherwise say how, and exit 2."""
    if not missing():
        return
    if os.geteuid() != 0:
        print(f"Slurm is not installed ({', '.join(missing())} missing); as root run:\n  {APT_COMMAND}")
        sys.exit(2)
    print(f"- installing Slurm: {APT_COMMAND}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    if still := missing():
        raise RuntimeError(f"still missing after the install: {still}")


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class SlurmCluster:
    """One node with ``gpus`` fake GPUs, its daemons started by :meth:`start` and ended by :meth:`stop`."""

    root: Path
    gpus: int
    profile: Profile
    submitters: int = 16
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        # Epoch seconds from squeue's %V/%S/%e, not local-time strings.
        return {**os.environ, "SLURM_CONF": str(self.conf), "SLURM_TIME_FORMAT": "%s"}

    def write_config(self) -> None:
        for sub in ("etc", "dev", "state", "spool", "log", "munge", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        for i in range(self.gpus):
            dev = self.root / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(NVIDIA_MAJOR, i))  # S_IFCHR
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        cpus = max(2, 2 * self.gpus)  # enough for every GPU to run a one-CPU job at once
        settings = {
            "ClusterName": "bench",
            "SlurmctldHost": f"{socket.gethostname().split('.')[0]}(127.0.0.1)",
            "SlurmctldPort": str(free_port()),
            "SlurmdPort": str(free_port()),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={self.root / 'munge' / 'munge.socket'}",
            "StateSaveLocation": str(self.root / "state"),
            "SlurmdSpoolDir": str(self.root / "spool"),
            "SlurmctldPidFile": str(self.root / "slurmctld.pid"),
            "SlurmdPidFile": str(self.root / "slurmd.pid"),
            "SlurmctldLogFile": str(self.root / "log" / "slurmctld.log"),
            "SlurmdLogFile": str(self.root / "log" / "slurmd.log"),
            # No cgroups in this container: processes tracked by parentage, no task confinement.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "MpiDefault": "none",
            "ReturnToService": "2",
            # select/linear (the other choice) gives every job the whole node: one job at a time.
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "GresTypes": "gpu",
            "SlurmdParameters": "config_overrides",
            **self.profile.settings,
        }
        lines = [f"{k}={v}" for k, v in settings.items()]
        lines.append(
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} Boards=1 SocketsPerBoard=1 "
            f"CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory=1024 Gres=gpu:{self.gpus} State=UNKNOWN"
        )
        lines.append(f"PartitionName=bench Nodes={NODE} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        last = self.gpus - 1
        files = f"nvidia[0-{last}]" if last else "nvidia0"
        (self.root / "etc" / "gres.conf").write_text(
            f"NodeName={NODE} Name=gpu File={self.root / 'dev' / files}\n"
        )
        (self.root / "etc" / "cgroup.conf").write_text("ConstrainDevices=no\nConstrainCores=no\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # the child keeps its own descriptor
        self.daemons[name] = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("reaper.py")), *argv],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=self.root / "jobs",
            start_new_session=True,
        )
        log.close()

    async def start(self, timeout: float = 60.0) -> None:
        self.write_config()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                _sbin("munged"),
                "-F",
                "--force",
                f"--socket={m / 'munge.socket'}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )
        await self._until(lambda: (m / "munge.socket").exists(), timeout, "munged")
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        await self._until(self._ctld_answers, timeout, "slurmctld")
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        await self._until(self._node_idle, timeout, "slurmd (node idle)")

    async def _until(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.daemons.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail()}")
            ok = check()
            if asyncio.iscoroutine(ok):
                ok = await ok
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not up after {timeout:.0f}s:\n{self.log_tail()}")
            await asyncio.sleep(0.2)

    async def _cli(self, *argv: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            cwd=self.root / "jobs",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    async def _ctld_answers(self) -> bool:
        code, _ = await self._cli("scontrol", "ping")
        return code == 0

    async def _node_idle(self) -> bool:
        code, out = await self._cli("sinfo", "-h", "-n", NODE, "-o", "%T %G")
        return code == 0 and out.startswith("idle") and f"gpu:{self.gpus}" in out

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Every daemon and whatever it left behind, even after a failed start."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.daemons.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait(5)

    # ------------------------------------------------------------------ the Side protocol

    def processes(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.daemons.items()}

    async def submit(self) -> str:
        code, out = await self._cli(
            "sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null", "-J", "bench", "--wrap", "true"
        )
        if code != 0:
            raise RuntimeError(f"sbatch failed ({code}): {out.strip()}")
        return out.strip().split(";")[0]

    async def busy(self) -> bool:
        code, out = await self._cli("squeue", "-h", "-t", "PD,CF,R,CG,S", "-o", "%i")
        if code != 0:
            raise RuntimeError(f"squeue failed: {out.strip()}")
        return bool(out.strip())

    async def times(self, ids: Iterable[str]) -> dict[str, JobTimes]:
        """Start and end time of every job that slurmctld still holds (MinJobAge keeps finished jobs
        300 s). Slurm records whole seconds: each is taken at the middle of its second."""
        wanted = set(ids)
        code, out = await self._cli("squeue", "-h", "-t", "all", "-o", "%i %S %e %T")
        if code != 0:
            raise RuntimeError(f"squeue failed: {out.strip()}")
        got: dict[str, JobTimes] = {}
        for line in out.splitlines():
            job_id, start, end, _state = line.split()
            if job_id in wanted and start.isdigit() and end.isdigit():
                got[job_id] = JobTimes(int(start) + 0.5, int(end) + 0.5)
        return got

    async def probe(self) -> Probe:
        t0 = time.perf_counter()
        job_id = await self.submit()
        while True:
            _, out = await self._cli("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T")
            state = out.strip()
            if state and state not in ("PENDING", "CONFIGURING"):
                # Slurm marks a job RUNNING when it allocates it: allocated and running are one moment.
                allocated = (time.perf_counter() - t0) * 1000
                return Probe(allocated, allocated)
            if time.perf_counter() - t0 > 60:
                raise TimeoutError(f"Slurm job {job_id} still {state or 'unknown'} after 60 s")
            await asyncio.sleep(0.005)
