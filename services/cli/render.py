"""What the CLI prints: JSON for scripts, Rich tables on a terminal, plain aligned text when piped.

stdout carries results (and a followed job's output); stderr carries progress, state changes and
errors, so ``gpufleet … --json | jq`` and ``gpufleet logs JOB > out.txt`` get only what they asked
for. No ANSI escape is written when stdout is not a terminal, when ``NO_COLOR`` is set (any value) or
when ``TERM=dumb``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.cli import exits

Row = Sequence[Any]


def _plain_env() -> bool:
    return "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"


class Output:
    def __init__(self, *, as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.is_tty = bool(getattr(self.stdout, "isatty", lambda: False)())
        self.out = Console(
            file=self.stdout,
            color_system=None if _plain_env() else "auto",
            highlight=False,
            soft_wrap=not self.is_tty,
        )
        err_tty = bool(getattr(self.stderr, "isatty", lambda: False)())
        self.err = Console(
            file=self.stderr,
            color_system=None if (_plain_env() or not err_tty) else "auto",
            highlight=False,
            soft_wrap=True,
        )

    # ------------------------------------------------------------------ results (stdout)

    def json(self, value: Any) -> None:
        """One JSON document (or one JSON Lines record) on stdout, no styling, flushed."""
        self.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Row], *, title: str | None = None) -> None:
        cells = [[cell(v) for v in row] for row in rows]
        if not self.is_tty:
            self.stdout.write(plain_table(headers, cells))
            self.stdout.flush()
            return
        t = Table(*headers, title=title, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
        for row in cells:
            # Text(), never markup: a job's name or command is the tenant's text, shown as typed.
            t.add_row(*(Text(c) for c in row))
        self.out.print(t)

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """``key: value`` lines (``show``), aligned."""
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            if self.is_tty:
                line = Text(f"{key:<{width}}  ", style="bold")
                line.append(cell(value))
                self.out.print(line)
            else:
                self.stdout.write(f"{key:<{width}}  {cell(value)}\n")
        self.stdout.flush()

    def text(self, message: str) -> None:
        self.stdout.write(message + ("" if message.endswith("\n") else "\n"))
        self.stdout.flush()

    def raw(self, data: str) -> None:
        """A job's output, written exactly as it came."""
        self.stdout.write(data)
        self.stdout.flush()

    # ------------------------------------------------------------------ messages (stderr)

    def info(self, message: str, *, style: str | None = None) -> None:
        self.err.print(Text(message, style=style or ""))

    def warn(self, message: str) -> None:
        self.err.print(Text(f"gpufleet: warning: {message}", style="yellow"))

    def error(self, exc: exits.CliError) -> None:
        if self.as_json:
            self.json(exc.as_json())
        self.err.print(Text(f"gpufleet: error: {exc.message}", style="bold red"))
        for line in exc.details:
            self.err.print(Text(f"  {line}", style="red"))

    @contextmanager
    def progress(self, message: str) -> Iterator[Any]:
        """A spinner on stderr while waiting, on a terminal only; yields something with ``update`` and
        ``stop`` (stopped before a job's output starts, so the two never share a line)."""
        if self.err.is_terminal and not self.as_json:
            with self.err.status(Text(message)) as status:
                yield status
        else:
            yield _NoStatus()


class _NoStatus:
    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def stop(self) -> None:
        pass


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """squeue-style: columns padded with spaces, nothing truncated, no decoration."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    # One line per cell: a newline in a tenant's text would break the table's rows.
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: str | None, now: datetime | None = None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM:SS``; ``-`` when absent."""
    parsed = parse_time(value)
    if parsed is None:
        return "-" if not value else value
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``1-02:03:04`` like Slurm's TIME column (days only when there are some)."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes:d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def short_id(value: str | None) -> str:
    return (value or "-")[:8]
