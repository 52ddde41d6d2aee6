"""Run one daemon under a child subreaper, so that every process it leaves behind is reaped here.

    python -m tests.bench.vs_slurm.reaper slurmd -D ...

slurmd starts each job's slurmstepd through a double fork: without a subreaper the step would be
reparented to init and its CPU time would be lost to the benchmark. Here every orphan of the daemon
becomes our child and, once reaped, its CPU time lands in our ``cutime``/``cstime``, which
:func:`tests.bench.vs_slurm.measure.tree_cpu_seconds` adds up. SIGTERM and SIGINT are passed to the
daemon; we exit with its status once no child is left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.bench.vs_slurm.reaper COMMAND [ARG...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}", file=sys.stderr)
        return 1
    daemon = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        if daemon.returncode is None:
            os.kill(daemon.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code
        if pid == daemon.pid:
            daemon.returncode = code = os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
