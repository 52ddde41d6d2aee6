"""Commands against a fake gateway: requests sent, tables and JSON printed, exit codes."""

from __future__ import annotations

import json

import httpx
import pytest

from services.cli import exits
from tests.unit.cli.conftest import JOB_ID, OTHER_ID, job, problem


def test_submit_sends_the_flags_and_prints_the_id(gateway, cli, capsys):
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    code = cli(
        "submit",
        "--gpus",
        "2",
        "--gpu-type",
        "h100-80gb",
        "--gpu-memory",
        "40G",
        "--cpus",
        "8",
        "--memory",
        "64G",
        "--nodes",
        "2",
        "--priority",
        "70",
        "--name",
        "train",
        "--time-limit",
        "2h",
        "--env",
        "SEED=1",
        "--hold",
        "--",
        "python",
        "train.py",
        "--epochs",
        "3",
    )
    assert code == 0
    (sent,) = gateway.sent("POST", "/v1/jobs")
    assert json.loads(sent.content) == {
        "command": "export SEED=1; python train.py --epochs 3",
        "gpu_count": 2,
        "gpu_type": "h100-80gb",
        "gpu_memory_mb": 40960,
        "cpu_cores": 8,
        "ram_mb": 65536,
        "nodes": 2,
        "priority": 70,
        "name": "train",
        "time_limit_seconds": 7200,
        "hold": True,
    }
    assert sent.headers["idempotency-key"]
    assert capsys.readouterr().out == f"Submitted job {JOB_ID}\n"


def test_submit_json_prints_the_api_body(gateway, cli, capsys):
    gateway.on("POST", "/v1/jobs", lambda r: httpx.Response(201, json=job()))
    assert cli("submit", "--json", "--", "echo hi") == 0
    assert json.loads(capsys.readouterr().out) == job()


def test_a_refused_submit_shows_the_problem_and_its_fields(gateway, cli, capsys):
    gateway.on(
        "POST",
        "/v1/jobs",
        lambda r: problem(
            422,
            "Request validation failed",
            "invalid request: gpu_count",
            errors=[{"field": "gpu_count", "message": "must be at most 16"}],
            request_id="req-7",
        ),
    )
    assert cli("submit", "--gpus", "99", "--", "true") == exits.DATA
    err = capsys.readouterr().err
    assert "gpufleet: error: Request validation failed (HTTP 422): invalid request: gpu_count" in err
    assert "gpu_count: must be at most 16" in err and "request id: req-7" in err


def _batch_answer(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["jobs"]
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(len(asked))]
    return httpx.Response(
        201, json={"jobs": [job(id=i, command=a["command"]) for i, a in zip(ids, asked, strict=True)]}
    )


def test_submit_count_sends_one_batch_of_copies_and_prints_their_ids(gateway, cli, capsys):
    gateway.on("POST", "/v1/jobs:batchCreate", _batch_answer)
    assert cli("submit", "--count", "3", "--gpus", "2", "--env", "SEED=1", "--", "python train.py") == 0
    (sent,) = gateway.sent("POST", "/v1/jobs:batchCreate")
    assert gateway.sent("POST", "/v1/jobs") == []
    # The API has no environment field: the copies are the same job (each knows its GPUFLEET_JOB_ID).
    one = {"command": "export SEED=1; python train.py", "gpu_count": 2}
    assert json.loads(sent.content) == {"jobs": [one, one, one]}
    assert sent.headers["idempotency-key"]  # the whole batch's: a retry never submits it twice
    captured = capsys.readouterr()
    assert captured.out.split() == [f"{i:08d}-0000-4000-8000-000000000000" for i in range(3)]
    assert "Submitted 3 jobs" in captured.err


def test_submit_count_json_prints_the_api_body(gateway, cli, capsys):
    gateway.on("POST", "/v1/jobs:batchCreate", _batch_answer)
    assert cli("submit", "--count", "2", "--json", "--", "true") == 0
    assert [j["command"] for j in json.loads(capsys.readouterr().out)["jobs"]] == ["true", "true"]


def test_a_refused_batch_shows_the_job_it_names(gateway, cli, capsys):
    gateway.on(
        "POST",
        "/v1/jobs:batchCreate",
        lambda r: problem(
            422,
            "Request validation failed",
            "jobs[0]: no node of this fleet could ever run this job",
            errors=[{"field": "jobs[0].gpu_count", "message": "no node has 9 GPUs"}],
        ),
    )
    assert cli("submit", "--count", "5", "--gpus", "9", "--", "true") == exits.DATA
    assert "jobs[0].gpu_count: no node has 9 GPUs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--count", "0", "--", "x"],
        ["submit", "--count", "1001", "--", "x"],
        ["submit", "--count", "2", "--follow", "--", "x"],
        ["submit", "--gpus", "many", "--", "x"],
        ["submit"],
        ["queue", "--state", "sleeping"],
        ["nosuch"],
        ["cost", "--by", "week"],
        ["show"],
    ],
)
def test_usage_errors_exit_64(gateway, cli, argv, capsys):
    assert cli(*argv) == exits.USAGE
    assert gateway.requests == []


def test_wrong_key_is_77_and_unknown_job_is_66(gateway, cli, monkeypatch, capsys):
    gateway.on("GET", f"/v1/jobs/{OTHER_ID}", lambda r: problem(404, "Resource not found", "job not found"))
    assert cli("show", OTHER_ID) == exits.NOT_FOUND
    assert "Resource not found (HTTP 404): job not found" in capsys.readouterr().err
    monkeypatch.setenv("GPUFLEET_API_KEY", "gpf_wrong")
    assert cli("queue") == exits.PERMISSION
    assert cli("queue", "--json") == exits.PERMISSION
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["kind"] == "error" and json.loads(last)["exit_code"] == 77


def test_an_unreachable_gateway_is_69(monkeypatch, capsys):
    from services.cli.app import main

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setenv("GPUFLEET_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GPUFLEET_API_KEY", "gpf_x")
    assert main(["queue"], transport=httpx.MockTransport(refuse)) == exits.UNAVAILABLE
    assert "cannot reach the gateway" in capsys.readouterr().err


def _jobs_by_status(request: httpx.Request) -> httpx.Response:
    status = request.url.params.get("status")
    table = {
        "running": [
            job(
                id="11111111-0000-4000-8000-000000000000",
                status="running",
                pending_reason=None,
                queue_position=None,
                node_id="abcdef12-0000-4000-8000-000000000000",
                started_at="2026-01-01T00:00:00Z",
            )
        ],
        "queued": [
            job(name="<b>x</b>\nline2"),
            job(id=OTHER_ID, queue_position=1, held=True, pending_reason={"code": "held", "message": "held"}),
        ],
    }
    return httpx.Response(200, json={"jobs": table.get(status or "", []), "next_cursor": None})


def test_queue_is_a_plain_table_when_piped(gateway, cli, capsys):
    gateway.on("GET", "/v1/jobs", _jobs_by_status)
    assert cli("queue") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "GPUS",
        "PRI",
        "POS",
        "TIME",
        "REASON/NODE",
        "EST.START",
        "EXIT",
    ]
    assert [line.split()[2] for line in lines[1:]] == ["running", "queued", "queued"]
    assert lines[2].split()[:2] == ["7f00aa11", "train"] and "held" in lines[2]  # position 1 first
    assert "no_capacity" in lines[3] and "<b>x</b>\\nline2" in lines[3]  # the name as typed, on one line
    assert "abcdef12" in lines[1]
    assert "\x1b[" not in out
    assert {r.url.params.get("status") for r in gateway.sent("GET", "/v1/jobs")} == {
        "queued",
        "scheduled",
        "running",
    }


def test_queue_json_is_every_job_of_every_page(gateway, cli, capsys):
    pages = [
        lambda r: httpx.Response(200, json={"jobs": [job()], "next_cursor": "abc"}),
        lambda r: httpx.Response(200, json={"jobs": [job(id=OTHER_ID)], "next_cursor": None}),
    ]
    gateway.on("GET", "/v1/jobs", pages)
    assert cli("queue", "--all", "--json") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["jobs"]] == [JOB_ID, OTHER_ID]
    first, second = gateway.sent("GET", "/v1/jobs")
    assert "status" not in first.url.params and second.url.params["cursor"] == "abc"


def test_a_terminal_gets_a_rich_table_and_no_color_means_no_ansi(gateway, cli, monkeypatch, capsys):
    gateway.on("GET", "/v1/jobs", _jobs_by_status)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli("queue") == 0
    out = capsys.readouterr().out
    assert "no_capacity" in out and "\x1b[" not in out
    assert "─" in out  # a drawn table, not the plain one


def test_show_and_why(gateway, cli, capsys):
    gateway.on("GET", f"/v1/jobs/{JOB_ID}", job(estimated_start="2999-01-01T00:00:00Z"))
    assert cli("show", JOB_ID) == 0
    out = capsys.readouterr().out
    assert "no_capacity: every GPU is busy" in out and "submitted" in out
    assert cli("why", JOB_ID) == 0
    why = capsys.readouterr().out
    assert "is pending" in why and "position: 2" in why and "estimated start:" in why and "(in " in why
    assert cli("why", JOB_ID, "--json") == 0
    assert json.loads(capsys.readouterr().out)["pending_reason"]["code"] == "no_capacity"


def test_a_job_named_by_a_prefix(gateway, cli, capsys):
    gateway.on("GET", "/v1/jobs", {"jobs": [job(), job(id=OTHER_ID)], "next_cursor": None})
    gateway.on("GET", f"/v1/jobs/{JOB_ID}", job())
    assert cli("show", JOB_ID[:8], "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == JOB_ID
    assert cli("show", "ffffffff") == exits.NOT_FOUND
    assert cli("show", "no-such-job") == exits.NOT_FOUND


def test_cancel_tries_every_job_and_exits_with_the_first_failure(gateway, cli, capsys):
    gateway.on(
        "POST", f"/v1/jobs/{JOB_ID}/cancel", lambda r: httpx.Response(200, json=job(status="cancelled"))
    )
    gateway.on(
        "POST",
        f"/v1/jobs/{OTHER_ID}/cancel",
        lambda r: problem(409, "Not allowed in the resource's current state", "job is already succeeded"),
    )
    assert cli("cancel", OTHER_ID, JOB_ID, "--reason", "wrong data") == exits.DATA
    captured = capsys.readouterr()
    assert f"cancelled {JOB_ID}" in captured.out and "already succeeded" in captured.err
    assert json.loads(gateway.sent("POST", f"/v1/jobs/{JOB_ID}/cancel")[0].content) == {
        "reason": "wrong data"
    }


def test_hold_and_release(gateway, cli, capsys):
    gateway.on("POST", f"/v1/jobs/{JOB_ID}/hold", lambda r: httpx.Response(200, json=job(held=True)))
    gateway.on("POST", f"/v1/jobs/{JOB_ID}/release", lambda r: httpx.Response(200, json=job()))
    assert cli("hold", JOB_ID) == 0 and cli("release", JOB_ID, "--json") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"held {JOB_ID}" and json.loads(out[1])["errors"] == []


def test_cost_of_a_job_grouped_and_not_yet_recorded(gateway, cli, capsys):
    gateway.on(
        "GET",
        f"/v1/jobs/{JOB_ID}/cost",
        {
            "job_id": JOB_ID,
            "organization_id": "o",
            "currency": "USD",
            "total_cost": "0.25",
            "gross_cost": "0.25",
            "credit": "0",
            "gpu_count": 1,
            "held_seconds": "300",
            "lines": [],
            "recorded_at": None,
            "attempts": [
                {
                    "attempt": 1,
                    "outcome": "succeeded",
                    "gross_cost": "0.25",
                    "credit": "0",
                    "net_cost": "0.25",
                    "gpu_count": 1,
                    "held_seconds": "300",
                    "start_time": None,
                    "end_time": None,
                }
            ],
        },
    )
    assert cli("cost", JOB_ID) == 0
    assert "0.25 USD" in capsys.readouterr().out
    summary = {
        "group_by": "day",
        "from": "a",
        "to": "b",
        "currency": "USD",
        "groups": [
            {"key": "2026-12-01", "gpu_seconds": 10.0, "cost": "1.23", "running_cost": "0.10", "jobs": 7}
        ],
        "total": {"gpu_seconds": 10.0, "cost": "1.23", "running_cost": "0.10"},
    }
    gateway.on("GET", "/v1/costs/summary", summary)
    assert cli("cost", "--by", "day", "--no-running") == 0
    out = capsys.readouterr().out
    assert "2026-12-01" in out and "1.23" in out and out.splitlines()[-1].split()[0] == "total"
    (sent,) = gateway.sent("GET", "/v1/costs/summary")
    assert sent.url.params["group_by"] == "day" and sent.url.params["include_running"] == "false"
    assert cli("cost", "--by", "gpu_type", "--json") == 0
    assert json.loads(capsys.readouterr().out) == summary
    gateway.on("GET", f"/v1/jobs/{OTHER_ID}/cost", lambda r: problem(404, "Resource not found", "no cost"))
    gateway.on("GET", f"/v1/jobs/{OTHER_ID}", job(id=OTHER_ID, status="running"))
    assert cli("cost", OTHER_ID) == exits.NOT_FOUND
    assert "no cost recorded yet" in capsys.readouterr().err


def test_gpus_nodes_keys_webhooks(gateway, cli, capsys):
    gateway.on(
        "GET",
        "/v1/gpus",
        {
            "gpus": [
                {
                    "id": "g" * 36,
                    "name": "sim0",
                    "gpu_type": "a100-40gb",
                    "node_id": "n",
                    "node_name": "host-1",
                    "index": 0,
                    "uuid": "u",
                    "memory_total_mb": 40960,
                    "status": "available",
                    "in_use": False,
                    "cost_per_hour": "2.50",
                    "provider": "local",
                    "is_spot": False,
                    "dedicated": False,
                    "last_active": None,
                }
            ]
        },
    )
    gateway.on(
        "GET",
        "/v1/nodes",
        {
            "items": [
                {
                    "id": "n" * 36,
                    "hostname": "host-1",
                    "provider": "local",
                    "spot": False,
                    "status": "online",
                    "last_heartbeat_at": None,
                    "cpu_cores": 16,
                    "ram_mb": 65536,
                    "labels": {},
                    "gpus": [
                        {"status": "free", "gpu_type": "a100-40gb"},
                        {"status": "allocated", "gpu_type": "a100-40gb"},
                    ],
                }
            ],
            "next_cursor": None,
        },
    )
    gateway.on("GET", "/v1/api-keys", {"api_keys": []})
    gateway.on("POST", "/v1/webhooks", lambda r: httpx.Response(201, json={"id": "w1", "secret": "whsec_x"}))
    gateway.on("DELETE", "/v1/webhooks/w1", lambda r: httpx.Response(204))
    assert cli("gpus") == 0
    assert "a100-40gb" in capsys.readouterr().out
    assert cli("nodes") == 0
    assert "1/2 free" in capsys.readouterr().out
    assert cli("keys", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"api_keys": []}
    assert cli("webhooks", "create", "https://example.com/h", "--event", "job.failed") == 0
    assert "whsec_x" in capsys.readouterr().out
    assert json.loads(gateway.sent("POST", "/v1/webhooks")[0].content) == {
        "url": "https://example.com/h",
        "events": ["job.failed"],
    }
    assert cli("webhooks", "delete", "w1") == 0


def test_events_tails_the_stream_as_lines_or_json(gateway, cli, capsys):
    from tests.unit.cli.conftest import frame

    body = frame(
        "5", "gpufleet.job.failed", {"job": {"job_id": JOB_ID, "status": "failed", "exit_code": 3}}
    ) + frame("6", "gpufleet.cost.recorded", {"job_id": JOB_ID, "total_cost": "0.50", "currency": "USD"})
    gateway.on(
        "GET",
        "/v1/events",
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body),
    )
    assert cli("events", "--count", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "gpufleet.job.failed" in lines[0] and "failed exit=3" in lines[0]
    assert "cost 0.50 USD" in lines[1]
    assert (
        cli("events", "--count", "1", "--json", "--last-event-id", "4", "--type", "gpufleet.job.failed") == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["cursor"] == "5" and record["event"]["data"]["job"]["exit_code"] == 3
    last = gateway.sent("GET", "/v1/events")[-1]
    assert last.headers["last-event-id"] == "4" and last.url.params["types"] == "gpufleet.job.failed"


def test_help_version_and_python_dash_m(cli, capsys):
    import subprocess
    import sys

    assert cli("--help") == 0 and "submit" in capsys.readouterr().out
    assert cli("--version") == 0 and capsys.readouterr().out.startswith("gpufleet ")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "submit", "--gpus"], capture_output=True, text=True
    )
    assert done.returncode == exits.USAGE and "--gpus" in done.stderr


def test_plain_tables_keep_every_character():
    from services.cli.render import plain_table

    text = plain_table(("id", "name"), [["a", "a very long name that would be cut"], ["bbbb", "-"]])
    assert text == "ID    NAME\na     a very long name that would be cut\nbbbb  -\n"
