"""`gpufleet watch`: one job's state from GET /v1/jobs/{id}:watch until it ends, resumed after a drop,
exiting as `submit --follow` does."""

from __future__ import annotations

import json

import httpx
import pytest

from services.cli import exits, sse
from tests.unit.cli.conftest import JOB_ID, Dropped, job

SSE = {"content-type": "text/event-stream"}
WATCH = f"/v1/jobs/{JOB_ID}:watch"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(sse, "FIRST_DELAY", 0.0)


def jobframe(**over) -> bytes:  # type: ignore[no-untyped-def]
    return f"event: job\ndata: {json.dumps(job(**over))}\n\n".encode()


def test_each_change_is_printed_and_the_jobs_own_exit_code_returned(cli, gateway, capsys):
    body = (
        jobframe()
        + b": heartbeat\n\n"
        + jobframe(status="scheduled", node_id="node-1", pending_reason=None)
        + jobframe(status="running", node_id="node-1", pending_reason=None)
        + jobframe(status="failed", exit_code=3, pending_reason=None)
    )
    gateway.on("GET", WATCH, httpx.Response(200, headers=SSE, content=body))
    assert cli("watch", JOB_ID) == 3
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        f"job {JOB_ID}: queued, waiting: no_capacity (every GPU is busy), position 2",
        f"job {JOB_ID}: scheduled, on node node-1",
        f"job {JOB_ID}: running, on node node-1",
        f"job {JOB_ID}: failed, exit code 3",
    ]
    assert len(gateway.sent("GET", WATCH)) == 1  # the final status ends it: no reconnection


def test_a_dropped_watch_is_reopened_and_a_repeated_state_not_printed_twice(cli, gateway, capsys):
    gateway.on(
        "GET",
        WATCH,
        [
            lambda _r: httpx.Response(200, headers=SSE, content=Dropped(jobframe(status="running"))),
            lambda _r: httpx.Response(
                200,
                headers=SSE,
                content=jobframe(status="running") + jobframe(status="succeeded", exit_code=0),
            ),
        ],
    )
    assert cli("watch", JOB_ID) == exits.OK
    states = [line.split(": ", 2)[1] for line in capsys.readouterr().out.splitlines()]
    assert states == ["running", "succeeded, exit code 0"]
    assert len(gateway.sent("GET", WATCH)) == 2


def test_json_prints_the_job_at_each_change(cli, gateway, capsys):
    body = jobframe() + jobframe(status="cancelled", pending_reason=None)
    gateway.on("GET", WATCH, httpx.Response(200, headers=SSE, content=body))
    assert cli("watch", JOB_ID, "--json") == exits.JOB_CANCELLED
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in records] == ["queued", "cancelled"]


def test_another_organizations_job_is_not_found(cli, gateway, capsys):
    assert cli("watch", JOB_ID) != exits.OK  # the fake gateway answers 404 for any unknown path
    assert "not" in capsys.readouterr().err.lower()
