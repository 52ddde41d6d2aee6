"""The installed ``gpufleet`` command against the running system: follow, queue, why, cancel, cost,
``--json`` parsed, and the exit codes scripts rely on."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from services.cli import exits
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 180


def gpufleet_binary() -> str:
    """The console script ``pip install -e .`` put beside this interpreter (the README's set-up)."""
    found = shutil.which("gpufleet", path=str(Path(sys.prefix) / "bin")) or shutil.which("gpufleet")
    assert found, "the gpufleet command is not installed: run `make install`"
    return found


class Cli:
    def __init__(self, url: str, key: str, home: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")},
            "GPUFLEET_URL": url,
            "GPUFLEET_API_KEY": key,
            "XDG_CONFIG_HOME": str(home),
            "NO_COLOR": "1",
        }
        self.binary = gpufleet_binary()

    async def __call__(self, *argv: str, key: str | None = None) -> tuple[int, str, str]:
        env = dict(self.env, **({"GPUFLEET_API_KEY": key} if key else {}))
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
        except TimeoutError:
            proc.kill()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def json(self, *argv: str) -> object:
        code, out, err = await self("--json", *argv)  # before the command: nothing after `--` is ours
        assert code == 0, (argv, code, out, err)
        return json.loads(out)


@pytest.fixture
def cli(stack, orgs, tmp_path) -> Cli:
    return Cli(stack.gateway_url, orgs["a"], tmp_path / "xdg")


async def test_follow_returns_the_jobs_own_exit_code_and_output(cli):
    async def two_gpus() -> object:
        gpus = await cli.json("gpus")
        return len(gpus["gpus"]) >= 2  # type: ignore[index]

    await eventually(two_gpus, timeout=60)

    code, out, err = await cli(
        "submit", "--follow", "--name", "cli-exit-3", "--", "echo from-the-cli-job; exit 3"
    )
    assert code == 3, (out, err)
    assert "from-the-cli-job" in out
    assert "ended: failed" in err

    code, out, err = await cli("submit", "--follow", "--json", "--gpus", "1", "--", "echo fine")
    assert code == 0, (out, err)
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["kind"] == "submitted" and records[-1]["kind"] == "finished"
    assert records[-1]["exit_code"] == 0 and records[-1]["job"]["status"] == "succeeded"
    job_id = records[0]["job"]["id"]
    assert "fine" in "".join(r["data"] for r in records if r["kind"] == "output"), err

    # The same job's whole output, once stored, and its events, read again afterwards.
    async def logged() -> object:
        code, out, _ = await cli("logs", job_id)
        return code == 0 and "fine" in out

    await eventually(logged, timeout=60)
    # The job's stream carries its job events and its cost events, from two topics whose replay
    # interleaves in no promised order: the first one may be either, but it is this job's.
    first = await cli.json("events", "--job", job_id, "--from-start", "--count", "1")
    assert first["type"].startswith(("gpufleet.job.", "gpufleet.cost."))  # type: ignore[index]
    assert job_id in json.dumps(first["event"])  # type: ignore[index]
    submitted = await cli.json(
        "events", "--job", job_id, "--type", "gpufleet.job.submitted", "--from-start", "--count", "1"
    )
    assert submitted["type"] == "gpufleet.job.submitted", submitted  # type: ignore[index]
    # Watching a job that has ended: its final state at once, then the stream ends with its code.
    code, out, err = await cli("watch", job_id)
    assert code == 0 and f"job {job_id}: succeeded" in out, (out, err)

    # Its cost, once billing has it, and grouped by day.
    async def job_cost() -> object:
        code, out, _ = await cli("cost", job_id, "--json")
        return json.loads(out) if code == 0 else None

    cost = await eventually(job_cost, timeout=60)
    assert cost["job_id"] == job_id and float(cost["total_cost"]) > 0  # type: ignore[index]
    by_day = await cli.json("cost", "--by", "day")
    assert by_day["group_by"] == "day" and by_day["groups"]  # type: ignore[index]


async def test_queue_why_and_cancel_a_held_job(cli):
    job = await cli.json("submit", "--hold", "--name", "cli-held", "--", "sleep 30")
    job_id = job["id"]  # type: ignore[index]

    queued = await cli.json("queue")
    mine = next(j for j in queued["jobs"] if j["id"] == job_id)  # type: ignore[index]
    assert mine["status"] == "queued" and mine["held"] is True

    code, out, _ = await cli("queue")
    assert code == 0 and job_id[:8] in out and "cli-held" in out and "\x1b[" not in out

    async def held_reason() -> object:
        why = await cli.json("why", job_id)
        return why if (why.get("pending_reason") or {}).get("code") == "held" else None  # type: ignore[union-attr]

    await eventually(held_reason, timeout=30)
    code, out, _ = await cli("why", job_id[:8])
    assert code == 0 and "is pending" in out and "held" in out

    code, out, err = await cli("cancel", job_id)
    assert code == 0, err
    shown = await cli.json("show", job_id)
    assert shown["status"] == "cancelled"  # type: ignore[index]
    code, _, err = await cli("cancel", job_id)
    assert code == exits.DATA and "HTTP 409" in err  # already finished


async def test_exit_codes_for_a_wrong_key_and_an_unknown_job(cli, orgs):
    code, out, err = await cli("queue", key="gpf_" + "x" * 46)
    assert code == exits.PERMISSION and "HTTP 401" in err, (out, err)
    code, _, err = await cli("show", str(uuid.uuid4()))
    assert code == exits.NOT_FOUND and "HTTP 404" in err
    # Another organization's job is just as unknown.
    job = await cli.json("submit", "--hold", "--", "true")
    code, _, _ = await cli("show", job["id"], key=orgs["b"])  # type: ignore[index]
    assert code == exits.NOT_FOUND
    code, _, _ = await cli("cancel", job["id"])  # type: ignore[index]
    assert code == 0
    code, _, err = await cli("submit", "--gpus", "x", "--", "true")
    assert code == exits.USAGE
