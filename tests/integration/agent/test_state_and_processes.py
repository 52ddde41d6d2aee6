"""The state file and the process runner against the real file system and real processes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.agent.adapters.processes import ProcessRunner, job_environment
from services.agent.adapters.report_store import JsonReportStore
from services.agent.domain.model import JobFinished, JobStarted

pytestmark = pytest.mark.integration

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_reports_survive_a_round_trip_through_the_file(tmp_path):
    store = JsonReportStore(tmp_path / "state" / "pending.json")
    reports = [
        JobStarted("a", NOW),
        JobFinished("a", NOW, exit_code=None, output_tail="é\n", cancelled=True, error_message="x"),
    ]
    store.save(reports)
    assert JsonReportStore(tmp_path / "state" / "pending.json").load() == reports
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["pending.json"]  # no temp file left


def test_a_corrupt_file_is_set_aside_not_fatal(tmp_path):
    path = tmp_path / "pending.json"
    path.write_text("{not json")
    assert JsonReportStore(path).load() == []
    assert not path.exists()
    assert len(list(tmp_path.glob("pending.json.corrupt-*"))) == 1


def test_the_job_environment_hides_agent_settings_and_names_the_gpus():
    env = job_environment({"PATH": "/bin", "GPUFLEET_AGENT_TOKEN": "secret"}, "j", [2, 3])
    assert env == {
        "PATH": "/bin",
        "CUDA_VISIBLE_DEVICES": "2,3",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "GPUFLEET_JOB_ID": "j",
    }


async def test_only_the_output_tail_is_kept(tmp_path):
    runner = ProcessRunner(tmp_path, output_tail_bytes=10)
    job = await runner.spawn(str(uuid.uuid4()), "seq 1 1000; echo oops >&2", [0])
    done = await asyncio.wait_for(job.wait(), 30)
    assert done.exit_code == 0
    assert done.output_tail == "1000\noops\n"  # stderr merged into stdout, only the last 10 bytes


async def test_a_job_that_cannot_get_its_folder_does_not_start(tmp_path):
    (tmp_path / "jobs").write_text("a file where the jobs folder should be")
    runner = ProcessRunner(tmp_path, output_tail_bytes=100)
    with pytest.raises(OSError):
        await runner.spawn(str(uuid.uuid4()), "true", [0])


async def test_a_malformed_job_id_cannot_name_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a UUID"):
        await ProcessRunner(tmp_path, 100).spawn("../../etc", "true", [0])


async def test_jobs_left_running_by_a_killed_agent_are_killed_at_restart(tmp_path):
    import os as _os
    import uuid as _uuid

    from services.agent.adapters.processes import ProcessRunner

    runner = ProcessRunner(tmp_path, 1024)
    job_id = str(_uuid.uuid4())
    handle = await runner.spawn(job_id, "sleep 60", [0])
    pid = handle.pid
    # The agent dies here without stopping the job; a new agent starts on the same state folder.
    assert ProcessRunner(tmp_path, 1024).kill_leftovers() == [job_id]
    exit_ = await handle.wait()
    assert exit_.exit_code == 128 + 9
    with pytest.raises(ProcessLookupError):
        _os.kill(pid, 0)
    assert ProcessRunner(tmp_path, 1024).kill_leftovers() == []  # nothing left, pid file removed
