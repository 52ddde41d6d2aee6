"""Pending job reports as one JSON file in the agent's state folder, replaced atomically.

The file is rewritten whole on every change (a handful of reports at most, normally zero), through a
temporary file, fsync and rename, so a crash leaves either the old or the new list, never half of one.
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

FORMAT_VERSION = 1


def to_json(report: Report) -> dict[str, Any]:
    if isinstance(report, JobStarted):
        return {"kind": "started", "job_id": report.job_id, "started_at": report.started_at.isoformat()}
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
        return JobStarted(job_id=data["job_id"], started_at=datetime.fromisoformat(data["started_at"]))
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
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> list[Report]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            document = json.loads(raw)
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {document.get('version')!r}")
            return [from_json(item) for item in document["reports"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Unreadable state must not keep the agent down forever: set it aside for a human, loudly.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "pending reports file is unreadable; moved aside, its reports are lost",
                extra={"path": str(aside), "reason": str(exc)},
            )
            return []

    def save(self, reports: Sequence[Report]) -> None:
        document = {"version": FORMAT_VERSION, "reports": [to_json(r) for r in reports]}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(document, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        # The rename itself must reach the disk too, or a power cut could bring back the old list.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
