"""``submit --follow`` and ``logs``: state from the stream, output as it comes, the job's exit code."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from services.cli import exits, follow, sse
from tests.unit.cli.conftest import JOB_ID, Dropped, frame, job

SSE = {"content-type": "text/event-stream"}


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(sse, "FIRST_DELAY", 0.0)
    monkeypatch.setattr(follow, "OUTPUT_RETRY_DELAY", 0.0)
    monkeypatch.setattr(follow, "POLL_SECONDS", 3600.0)  # the stream alone must bring the end


def _event(cursor: str, status: str, **over) -> bytes:
    snapshot = {**job(status=status, **over), "job_id": JOB_ID}
    snapshot.pop("id")
    return frame(cursor, f"gpufleet.job.{status}", {"job": snapshot, "previous_status": None, "reason": None})


def _setup(gateway, *, final: dict, events: list[bytes], output: list[httpx.Response] | None = None):
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}",
        [lambda r: httpx.Response(200, json=job()), lambda r: httpx.Response(200, json=final)],
    )
    gateway.on("GET", "/v1/events", lambda r: httpx.Response(200, headers=SSE, content=b"".join(events)))
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}/logs",
        [lambda r, o=o: o for o in output or []] or (lambda r: httpx.Response(200, text="")),
    )


def test_follow_streams_state_and_output_and_exits_with_the_jobs_code(gateway, cli, capsys):
    final = job(status="failed", exit_code=3, pending_reason=None, queue_position=None)
    _setup(
        gateway,
        final=final,
        events=[
            _event("1", "scheduled", node_id="n1"),
            _event("2", "started", node_id="n1"),
            _event("3", "failed", exit_code=3),
        ],
        output=[
            httpx.Response(
                200, content=Dropped("héllo ".encode()[:2]), headers={"GpuFleet-Output-Complete": "false"}
            ),
            httpx.Response(
                200, content="héllo world\n".encode()[2:], headers={"GpuFleet-Output-Complete": "true"}
            ),
        ],
    )
    assert cli("submit", "--follow", "--", "echo hello; exit 3") == 3
    captured = capsys.readouterr()
    assert captured.out == "héllo world\n"  # resumed at the byte offset reached, the é split across the drop
    assert "ended: failed, exit code 3 -> exit 3" in captured.err
    assert "waiting: no_capacity" in captured.err
    first, second = gateway.sent("GET", f"/v1/jobs/{JOB_ID}/logs")
    assert first.url.params["follow"] == "true" and first.url.params["offset"] == "0"
    assert second.url.params["offset"] == "2"
    assert gateway.sent("GET", "/v1/events")[0].url.params["job_id"] == JOB_ID


def test_follow_json_is_json_lines_ending_with_the_outcome(gateway, cli, capsys):
    final = job(status="succeeded", exit_code=0, pending_reason=None, queue_position=None)
    _setup(
        gateway,
        final=final,
        events=[_event("1", "succeeded", exit_code=0)],
        output=[httpx.Response(200, text="done\n")],
    )
    assert cli("submit", "--follow", "--json", "--", "true") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "submitted" and kinds[-1] == "finished"
    assert {"event", "output", "status"} <= set(kinds)
    assert records[-1]["exit_code"] == 0 and records[-1]["job"]["status"] == "succeeded"
    assert next(r for r in records if r["kind"] == "event")["cursor"] == "1"


def test_a_cancelled_job_without_a_code(gateway, cli, capsys):
    final = job(status="cancelled", exit_code=None, pending_reason=None, queue_position=None)
    _setup(gateway, final=final, events=[_event("1", "cancelled")])
    assert cli("submit", "--follow", "--", "sleep 100") == exits.JOB_CANCELLED


def test_a_finished_job_is_noticed_when_the_stream_opens(gateway, cli, capsys):
    """The job ended before the stream was open: the read at open time is the end."""
    final = job(
        status="succeeded", exit_code=0, output_tail="tail\n", pending_reason=None, queue_position=None
    )
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    gateway.on("GET", f"/v1/jobs/{JOB_ID}", final)
    gateway.on("GET", "/v1/events", lambda r: httpx.Response(200, headers=SSE, content=b": heartbeat\n\n"))
    # A gateway without the logs endpoint: the job's output_tail is shown instead.
    assert cli("submit", "--follow", "--", "true") == 0
    assert capsys.readouterr().out == "tail\n"


def test_without_an_event_stream_the_job_is_polled(gateway, cli, capsys, monkeypatch):
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.0)
    final = job(status="timed_out", exit_code=None, pending_reason=None, queue_position=None)
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}",
        [
            lambda r: httpx.Response(200, json=job(status="running")),
            lambda r: httpx.Response(200, json=final),
        ],
    )
    gateway.on("GET", f"/v1/jobs/{JOB_ID}/logs", lambda r: httpx.Response(200, text="x\n"))
    assert cli("submit", "--follow", "--", "sleep 9") == exits.JOB_TIMED_OUT
    captured = capsys.readouterr()
    assert "no event stream" in captured.err and captured.out == "x\n"


def test_logs_prints_the_output_and_says_when_it_was_cut(gateway, cli, capsys):
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}/logs",
        lambda r: httpx.Response(
            200,
            text="head\n[… 10 bytes cut …]\ntail\n",
            headers={
                "GpuFleet-Output-Complete": "true",
                "GpuFleet-Output-Truncated": "true",
                "GpuFleet-Output-Size": "30",
            },
        ),
    )
    assert cli("logs", JOB_ID) == 0
    captured = capsys.readouterr()
    assert captured.out == "head\n[… 10 bytes cut …]\ntail\n" and "was cut" in captured.err
    assert "follow" not in gateway.sent("GET", f"/v1/jobs/{JOB_ID}/logs")[0].url.params
    assert cli("logs", JOB_ID, "--json", "--offset", "5") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["truncated"] is True and record["complete"] is True and record["size"] == 30
    assert gateway.sent("GET", f"/v1/jobs/{JOB_ID}/logs")[-1].url.params["offset"] == "5"


def test_logs_of_an_unknown_job_is_66(gateway, cli, capsys):
    assert cli("logs", JOB_ID) == exits.NOT_FOUND  # no logs route and no such job in the fake


def test_a_replayed_earlier_state_is_not_said_again(gateway, cli, capsys):
    # The read that opens the stream already says "scheduled"; the stream then replays the job from
    # its first event ("queued"): that older state is not printed after the newer one.
    off = {"pending_reason": None, "queue_position": None}
    final = job(status="succeeded", exit_code=0, **off)
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}",
        [
            lambda r: httpx.Response(200, json=job(status="scheduled", node_id="n1", **off)),
            lambda r: httpx.Response(200, json=final),
        ],
    )
    events = [
        _event("1", "queued"),
        _event("2", "scheduled", node_id="n1", **off),
        _event("3", "running", node_id="n1", **off),
        _event("4", "succeeded", exit_code=0, **off),
    ]
    gateway.on("GET", "/v1/events", lambda r: httpx.Response(200, headers=SSE, content=b"".join(events)))
    gateway.on("GET", f"/v1/jobs/{JOB_ID}/logs", lambda r: httpx.Response(200, text=""))
    assert cli("submit", "--gpus", "1", "--follow", "--", "true") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"job {JOB_ID}: ")]
    statuses = [line.split(": ")[1].split(",")[0] for line in said]
    assert statuses == ["scheduled", "running", "succeeded"], said


def test_the_jobs_own_watch_tells_the_end_when_the_event_stream_says_nothing(gateway, cli, capsys):
    final = job(status="succeeded", exit_code=0, pending_reason=None, queue_position=None)
    _setup(gateway, final=final, events=[])
    gateway.on("GET", "/v1/events", lambda r: httpx.Response(200, headers=SSE, content=_Silent()))
    watched = b"".join(
        f"event: job\ndata: {json.dumps(j)}\n\n".encode()
        for j in (job(), job(status="running", node_id="n1", pending_reason=None), final)
    )
    gateway.on("GET", f"/v1/jobs/{JOB_ID}:watch", httpx.Response(200, headers=SSE, content=watched))
    assert cli("submit", "--follow", "--", "true") == exits.OK
    err = capsys.readouterr().err
    assert f"job {JOB_ID}: running, on node n1" in err and f"job {JOB_ID}: succeeded" in err


class _Silent:
    """An event stream that stays open and says nothing but heartbeats."""

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        while True:
            yield b": heartbeat\n\n"
            await asyncio.sleep(0.05)
