"""Pending job reports in the agent's state folder: an append-only journal, compacted now and then.

Line one is ``{"version": 2}``; then one line per change: ``{"put": n, "report": {...}}`` when a report is
queued and ``{"ack": [n, ...]}`` when the scheduler acknowledged reports. :meth:`JsonReportStore.save`
appends without an fsync; :meth:`JsonReportStore.sync` makes what was appended durable, and the report
queue calls it (in a worker thread, once for every report queued since the last call) before it sends a
report and before the agent forgets a finished job. An acknowledgement is never synced on its own (if a
crash loses it, the report is sent again, and the scheduler takes every report idempotently). So a job
costs two short appends and at most two fsyncs, shared with the other jobs' reports of the same moment,
instead of rewriting the whole list (16 KB of output tail per finished job) with two fsyncs on every
change, on the event loop.

When the journal holds many more lines than pending reports it is rewritten (a temporary file, fsync,
rename, fsync of the folder), so a crash leaves the old journal or the new one. A last line cut short by
a crash (its fsync never returned, so nobody relied on it) is ignored. Version 1 files (one JSON
document with the whole list) are read and replaced by a journal on the next change.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..domain.model import JobFinished, JobStarted, Report

log = logging.getLogger("gpufleet.agent.reports")

FORMAT_VERSION = 2


def to_json(report: Report) -> dict[str, Any]:
    if isinstance(report, JobStarted):
        return {
            "kind": "started",
            "job_id": report.job_id,
            "started_at": report.started_at.isoformat(),
            "attempt": report.attempt,
        }
    return {
        "kind": "finished",
        "job_id": report.job_id,
        "finished_at": report.finished_at.isoformat(),
        "exit_code": report.exit_code,
        "output_tail": report.output_tail,
        "cancelled": report.cancelled,
        "error_message": report.error_message,
        "timed_out": report.timed_out,
        "attempt": report.attempt,
    }


def from_json(data: dict[str, Any]) -> Report:
    if data["kind"] == "started":
        return JobStarted(
            job_id=data["job_id"],
            started_at=datetime.fromisoformat(data["started_at"]),
            attempt=int(data.get("attempt", 0)),  # absent in files written before it was sent
        )
    if data["kind"] == "finished":
        return JobFinished(
            job_id=data["job_id"],
            finished_at=datetime.fromisoformat(data["finished_at"]),
            exit_code=data["exit_code"],
            output_tail=data["output_tail"],
            cancelled=data["cancelled"],
            error_message=data["error_message"],
            # Absent in files written before time limits and attempts.
            timed_out=bool(data.get("timed_out", False)),
            attempt=int(data.get("attempt", 0)),
        )
    raise ValueError(f"unknown report kind {data['kind']!r}")


class JsonReportStore:
    """The durable list of pending reports (see the module docstring). ``save(reports)`` makes the stored
    list equal ``reports``: those not stored yet (by identity) are appended, those no longer in it are
    acknowledged; ``sync()`` puts every append so far on the disk."""

    COMPACT_MIN_LINES = 256  # a journal shorter than this is never rewritten

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._stored: dict[int, tuple[int, Report]] = {}  # id(report) -> (entry number, report)
        self._next = 1
        self._lines = 0  # lines in the journal file, the version line included
        self._journal = False  # the file on disk is a version 2 journal

    def load(self) -> list[Report]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            reports = self._parse(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Unreadable state must not keep the agent down forever: set it aside for a human, loudly.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "pending reports file is unreadable; moved aside, its reports are lost",
                extra={"path": str(aside), "reason": str(exc)},
            )
            self._stored, self._lines, self._journal = {}, 0, False
            return []
        return reports

    def _parse(self, raw: str) -> list[Report]:
        self._stored, self._next, self._lines, self._journal = {}, 1, 0, False
        first, _, rest = raw.partition("\n")
        header = json.loads(first)
        if header.get("version") == 1:  # the whole list as one document (agents before the journal)
            reports = [from_json(item) for item in header["reports"]]
            for report in reports:
                self._stored[id(report)] = (self._next, report)
                self._next += 1
            return reports
        if header.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported version {header.get('version')!r}")
        entries: dict[int, Report] = {}
        lines = rest.split("\n")
        for n, line in enumerate(lines):
            if not line:
                continue
            try:
                change = json.loads(line)
            except ValueError:
                if n == len(lines) - 1:
                    break  # the last line, cut short by a crash before its fsync returned
                raise
            if "put" in change:
                entries[int(change["put"])] = from_json(change["report"])
            else:
                for k in change["ack"]:
                    entries.pop(int(k), None)
        self._journal = True
        self._lines = 1 + sum(1 for line in lines if line)
        self._next = max([*entries, 0]) + 1
        reports = [entries[k] for k in sorted(entries)]
        for k, report in zip(sorted(entries), reports, strict=True):
            self._stored[id(report)] = (k, report)
        return reports

    def save(self, reports: Sequence[Report]) -> None:
        keep = {id(r) for r in reports}
        gone = [k for key, (k, _) in self._stored.items() if key not in keep]
        added = [r for r in reports if id(r) not in self._stored]
        if not self._journal or self._lines + len(added) + 1 > max(self.COMPACT_MIN_LINES, 4 * len(reports)):
            self._compact(reports)
            return
        lines = []
        if gone:
            lines.append(json.dumps({"ack": gone}))
            for key in [key for key in self._stored if key not in keep]:
                del self._stored[key]
        for report in added:
            lines.append(json.dumps({"put": self._next, "report": to_json(report)}))
            self._stored[id(report)] = (self._next, report)
            self._next += 1
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self._lines += len(lines)

    def sync(self) -> None:
        """Every append so far on the disk (safe in a worker thread while the loop appends: an append
        made during the fsync is either in it or left for the next call). A compaction syncs itself."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing was ever written
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _compact(self, reports: Sequence[Report]) -> None:
        self._stored, self._next = {}, 1
        lines = [json.dumps({"version": FORMAT_VERSION})]
        for report in reports:
            lines.append(json.dumps({"put": self._next, "report": to_json(report)}))
            self._stored[id(report)] = (self._next, report)
            self._next += 1
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        # The rename itself must reach the disk too, or a power cut could bring back the old list.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._journal, self._lines = True, len(lines)
