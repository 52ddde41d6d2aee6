"""The pending-reports journal: appends with an fsync per new report, acknowledgements without one,
compaction, a torn last line, and files of the previous format."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from services.agent.adapters.report_store import JsonReportStore
from services.agent.domain.model import JobFinished, JobStarted

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def started(n: int) -> JobStarted:
    return JobStarted(f"job-{n}", NOW)


def finished(n: int) -> JobFinished:
    return JobFinished(f"job-{n}", NOW, exit_code=n % 3, output_tail="x" * 100, attempt=1)


def test_what_is_pending_after_puts_and_acknowledgements_survives_a_restart(tmp_path):
    path = tmp_path / "pending.json"
    store = JsonReportStore(path)
    pending = [started(1), started(2)]
    store.save(pending)
    pending = [*pending, finished(1)]
    store.save(pending)
    pending = pending[1:]  # job-1's start acknowledged
    store.save(pending)
    pending = [*pending, finished(2)]
    store.save(pending)
    assert JsonReportStore(path).load() == pending
    assert path.read_text().splitlines()[0] == '{"version": 2}'


def test_appends_wait_for_no_disk_and_sync_makes_them_durable(tmp_path, monkeypatch):
    store = JsonReportStore(tmp_path / "pending.json")
    store.save([started(0)])  # creates the journal (a compaction: synced by itself)
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    a, b = started(1), started(2)
    store.save([started(0), a, b])
    store.save([b])  # an acknowledgement
    assert synced == []  # the event loop never waits on the disk
    store.sync()
    assert len(synced) == 1  # one fsync for both new reports and the acknowledgement
    assert JsonReportStore(tmp_path / "pending.json").load() == [b]


def test_a_last_line_cut_short_by_a_crash_is_ignored(tmp_path):
    path = tmp_path / "pending.json"
    store = JsonReportStore(path)
    store.save([started(1)])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"put": 2, "report": {"kind": "sta')
    assert JsonReportStore(path).load() == [started(1)]


def test_a_broken_line_in_the_middle_sets_the_file_aside(tmp_path):
    path = tmp_path / "pending.json"
    path.write_text('{"version": 2}\n{broken\n{"ack": [1]}\n')
    assert JsonReportStore(path).load() == []
    assert not path.exists() and len(list(tmp_path.glob("pending.json.corrupt-*"))) == 1


def test_a_file_of_the_previous_format_is_read_and_replaced_by_a_journal(tmp_path):
    path = tmp_path / "pending.json"
    old = {
        "version": 1,
        "reports": [{"kind": "started", "job_id": "job-1", "started_at": NOW.isoformat()}],
    }
    path.write_text(json.dumps(old))
    store = JsonReportStore(path)
    loaded = store.load()
    assert loaded == [started(1)]
    store.save([*loaded, started(2)])
    assert path.read_text().splitlines()[0] == '{"version": 2}'
    assert JsonReportStore(path).load() == [started(1), started(2)]


def test_the_journal_is_compacted_so_it_stays_proportional_to_what_is_pending(tmp_path):
    path = tmp_path / "pending.json"
    store = JsonReportStore(path)
    pending: list = []
    for n in range(2000):
        pending.append(finished(n))
        store.save(pending)
        if len(pending) > 3:
            pending = pending[2:]
            store.save(pending)
    lines = path.read_text().splitlines()
    assert len(lines) <= max(JsonReportStore.COMPACT_MIN_LINES, 4 * len(pending)) + 2
    assert JsonReportStore(path).load() == pending
    assert not list(tmp_path.glob(".*.tmp"))
