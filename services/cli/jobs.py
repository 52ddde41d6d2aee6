"""Job commands: submit, queue, show, logs, cancel, hold, release, why."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from services.cli import exits, spec, sse
from services.cli.app import JsonFlag, app, with_api
from services.cli.client import Api
from services.cli.follow import TERMINAL, Follower, describe, follow_output, route_missing
from services.cli.render import Output, duration, parse_time, short_id, when
from shared.contracts.jobs import JobStatus
from shared.contracts.limits import MAX_BATCH_SUBMIT

ACTIVE = ("running", "scheduled", "queued")
STATES: tuple[str, ...] = get_args(JobStatus)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A job named by a prefix of its id is looked for among this many of the newest jobs.
PREFIX_SEARCH = 1000
SUBMIT_ATTEMPTS = 3

JobArg = Annotated[str, typer.Argument(metavar="JOB", help="A job id, or a unique prefix of one.")]


async def resolve_job(api: Api, ref: str) -> str:
    """A full id as given; a prefix (as the tables show) must match exactly one recent job."""
    if _UUID.match(ref):
        return ref.lower()
    prefix = ref.lower()
    if len(prefix) < 4 or not re.fullmatch(r"[0-9a-f-]+", prefix):
        raise exits.CliError(f"no such job: {ref}", exits.NOT_FOUND)
    jobs = await api.pages("/jobs", "jobs", max_items=PREFIX_SEARCH)
    matches = sorted({j["id"] for j in jobs if j["id"].startswith(prefix)})
    if not matches:
        raise exits.CliError(f"no such job: {ref}", exits.NOT_FOUND)
    if len(matches) > 1:
        raise exits.CliError(
            f"{ref} is ambiguous: {len(matches)} jobs start with it", exits.USAGE, details=matches[:10]
        )
    return matches[0]


# ---------------------------------------------------------------------------------------------- submit


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- COMMAND...",
            help="What to run. One argument is a shell command line; several are quoted and joined.",
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", "-G", help="GPUs (per node).")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="A type of `gpufleet gpus`.")] = None,
    gpu_memory: Annotated[
        str | None, typer.Option("--gpu-memory", help="Memory needed on each GPU: 1024 (MB), 40G.")
    ] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", "-c", help="CPU cores (per node).")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="RAM (per node): 4096 (MB), 64G.")] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", "-N", help="A gang across this many nodes.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", help="0-100, higher runs first.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-J", help="A name for people.")] = None,
    time_limit: Annotated[
        str | None,
        typer.Option("--time-limit", "-t", help="Wall time limit: 90 (minutes), 1:30:00, 2h, 1-00:00."),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE exported before the command (repeat).")
    ] = None,
    hold: Annotated[
        bool, typer.Option("--hold", help="Queue it held (`gpufleet release` lets it run).")
    ] = False,
    no_requeue: Annotated[
        bool, typer.Option("--no-requeue", help="Fail rather than rerun when its node is lost.")
    ] = False,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="Receives this job's events.")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-P", help="The project id it belongs to (a project-bound key: its own)."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="A container image to run it in, e.g. nvcr.io/nvidia/pytorch:24.01-py3."
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A job file (YAML or JSON); flags override it.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Stream state and output; exit with the job's exit code.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            max=MAX_BATCH_SUBMIT,
            help=f"Submit this many copies in one call, all or none (at most {MAX_BATCH_SUBMIT}); prints their ids.",
        ),
    ] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Submit a job (like sbatch). With --follow, wait for it and exit with its exit code. With --count,
    many copies of it at once (like a job array)."""

    async def body(api: Api, out: Output) -> int:
        if count is not None and follow:
            raise exits.CliError("--follow follows one job: leave it out with --count", exits.USAGE)
        flags = {
            "gpu_count": gpus,
            "gpu_type": gpu_type,
            "gpu_memory_mb": spec.megabytes(gpu_memory, "--gpu-memory") if gpu_memory else None,
            "cpu_cores": cpus,
            "ram_mb": spec.megabytes(memory, "--memory") if memory else None,
            "nodes": nodes,
            "priority": priority,
            "name": name,
            "time_limit_seconds": spec.seconds(time_limit, "--time-limit") if time_limit else None,
            "hold": True if hold else None,
            "no_requeue": True if no_requeue else None,
            "webhook_url": webhook_url,
            "project_id": project,
            "image": image,
            "env": spec.env_pairs(env or []),
        }
        request = spec.build(spec.load_file(file) if file else {}, flags, command or [])
        if count is not None:
            return await _submit_copies(api, out, request, count)
        job = await _submit(api, request)
        if not follow:
            if out.as_json:
                out.json(job)
            else:
                out.text(f"Submitted job {job['id']}")
                if job.get("status") == "queued" and job.get("held"):
                    out.info("held: `gpufleet release` lets it run")
            return exits.OK
        if out.as_json:
            out.json({"kind": "submitted", "job": job})
        else:
            out.info(f"Submitted job {job['id']}")
        return await _follow(api, out, job["id"])

    with_api(ctx, json_flag, body)


async def _submit(api: Api, request: dict[str, Any], path: str = "/jobs") -> dict[str, Any]:
    """POST with an Idempotency-Key, retried on a lost connection: never two jobs for one submit."""
    key = str(uuid.uuid4())
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            answer: dict[str, Any] = await api.post(path, request, headers={"Idempotency-Key": key})
            return answer
        except exits.CliError as exc:
            retryable = exc.code in (exits.TEMPORARY, exits.UNAVAILABLE)
            if isinstance(exc, exits.ApiError) or not retryable or attempt == SUBMIT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _submit_copies(api: Api, out: Output, request: dict[str, Any], count: int) -> int:
    """``count`` copies of the job in one batch (POST /v1/jobs:batchCreate). The API has no
    environment field (``--env`` is exported ahead of the command), so the copies are identical: a job
    tells itself apart by ``GPUFLEET_JOB_ID``, which the agent sets."""
    answer = await _submit(api, {"jobs": [request] * count}, path="/jobs:batchCreate")
    jobs: list[dict[str, Any]] = answer["jobs"]
    if out.as_json:
        out.json(answer)
    else:
        out.info(f"Submitted {len(jobs)} jobs")
        for job in jobs:
            out.text(job["id"])
    return exits.OK


async def _follow(api: Api, out: Output, job_id: str) -> int:
    follower = Follower(api, job_id, out, emit=out.json)
    with out.progress(f"job {job_id}: waiting") as spinner:
        follower.spinner = spinner
        final = await follower.run()
    code = exits.job_exit_code(final)
    if out.as_json:
        out.json({"kind": "finished", "job": final, "exit_code": code})
    else:
        out.info(
            f"job {job_id} ended: {final.get('status')}, exit code {final.get('exit_code')} -> exit {code}"
        )
    return code


# ---------------------------------------------------------------------------------------------- queue


def _elapsed(job: dict[str, Any], now: datetime) -> float | None:
    start = parse_time(job.get("started_at")) or parse_time(job.get("created_at"))
    end = parse_time(job.get("finished_at")) or now
    return (end - start).total_seconds() if start else None


def _gpus(job: dict[str, Any]) -> str:
    text = str(job.get("gpu_count", "?"))
    if job.get("nodes", 1) > 1:
        text = f"{job['nodes']}x{text}"
    return f"{text}:{job['gpu_type']}" if job.get("gpu_type") else text


def _reason(job: dict[str, Any]) -> str:
    if job.get("status") == "queued":
        return str((job.get("pending_reason") or {}).get("code") or ("held" if job.get("held") else "-"))
    if job.get("status") in ("scheduled", "running"):
        nodes = [p["node_id"][:8] for p in job.get("placements") or []] or [short_id(job.get("node_id"))]
        return ",".join(nodes)
    return str(job.get("error_message") or "-")[:40]


QUEUE_HEADERS = ("id", "name", "state", "gpus", "pri", "pos", "time", "reason/node", "est.start", "exit")


def queue_rows(jobs: list[dict[str, Any]], now: datetime) -> list[list[Any]]:
    order = {s: i for i, s in enumerate(("running", "scheduled", "queued"))}
    jobs = sorted(
        jobs,
        key=lambda j: (order.get(j["status"], 3), j.get("queue_position") or 0, j.get("created_at") or ""),
    )
    return [
        [
            short_id(j["id"]),
            j.get("name"),
            j["status"],
            _gpus(j),
            j.get("priority"),
            j.get("queue_position"),
            duration(_elapsed(j, now)),
            _reason(j),
            when(j.get("estimated_start")) if j.get("estimated_start") else None,
            j.get("exit_code"),
        ]
        for j in jobs
    ]


@app.command()
def queue(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help=f"Only these states (repeat): {', '.join(STATES)}."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Finished jobs too (newest first).")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many jobs per state.")] = 500,
    project: Annotated[str | None, typer.Option("--project", "-P", help="Only this project's jobs.")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Waiting and running jobs (like squeue), with the pending reason and queue position."""
    bad = sorted(set(state or []) - set(STATES))
    if bad:
        raise typer.BadParameter(
            f"unknown state {', '.join(bad)}; one of {', '.join(STATES)}", param_hint="--state"
        )

    async def body(api: Api, out: Output) -> int:
        jobs: list[dict[str, Any]] = []
        only = {"project_id": project} if project else {}
        if all_ and not state:
            jobs = await api.pages("/jobs", "jobs", max_items=limit, **only)
        else:
            for s in state or ACTIVE:
                jobs += await api.pages("/jobs", "jobs", max_items=limit, status=s, **only)
        if out.as_json:
            out.json({"jobs": jobs})
        elif jobs:
            out.table(QUEUE_HEADERS, queue_rows(jobs, datetime.now(UTC)))
        else:
            out.info("no jobs" if all_ or state else "no waiting or running jobs (--all shows finished ones)")
        return exits.OK

    with_api(ctx, json_flag, body)


# ---------------------------------------------------------------------------------------------- show / why


@app.command()
def show(ctx: typer.Context, job: JobArg, json_flag: JsonFlag = False) -> None:
    """Everything about one job, with its status history."""

    async def body(api: Api, out: Output) -> int:
        j = await api.get(f"/jobs/{await resolve_job(api, job)}")
        if out.as_json:
            out.json(j)
            return exits.OK
        reason = j.get("pending_reason") or {}
        out.fields(
            [
                ("id", j["id"]),
                ("name", j.get("name")),
                ("state", j["status"] + (" (held)" if j.get("held") else "")),
                ("command", j.get("command")),
                ("gpus", _gpus(j)),
                ("gpu memory", f"{j['gpu_memory_mb']} MB" if j.get("gpu_memory_mb") else "any"),
                ("cpus / ram", f"{j.get('cpu_cores') or '-'} / {j.get('ram_mb') or '-'} MB"),
                ("priority", j.get("priority")),
                ("time limit", duration(j["time_limit_seconds"]) if j.get("time_limit_seconds") else None),
                ("attempt", j.get("attempt")),
                ("pending", f"{reason.get('code')}: {reason.get('message')}" if reason else None),
                ("position", j.get("queue_position")),
                ("estimated start", when(j.get("estimated_start")) if j.get("estimated_start") else None),
                ("nodes", [p["node_id"] for p in j.get("placements") or []] or j.get("node_id")),
                ("gpu ids", j.get("gpu_ids")),
                ("exit code", j.get("exit_code")),
                ("error", j.get("error_message")),
                ("created", when(j.get("created_at"))),
                ("started", when(j.get("started_at"))),
                ("finished", when(j.get("finished_at"))),
            ]
        )
        history = j.get("history") or []
        if history:
            out.text("")
            out.table(
                ("at", "state", "reason"),
                [[when(h.get("at")), h["status"], h.get("reason")] for h in history],
            )
        return exits.OK

    with_api(ctx, json_flag, body)


def why_text(j: dict[str, Any], now: datetime) -> list[str]:
    status = j["status"]
    if status != "queued":
        since = {"running": j.get("started_at"), "scheduled": j.get("scheduled_at")}.get(status) or j.get(
            "finished_at"
        )
        return [
            f"job {j['id']} is not pending: it is {status}" + (f" since {when(since)}" if since else "") + "."
        ]
    reason = j.get("pending_reason") or {}
    lines = [f"job {j['id']} is pending."]
    if reason:
        lines.append(f"reason: {reason.get('code')}: {reason.get('message')}")
    if j.get("held"):
        lines.append("it is held: `gpufleet release JOB` lets it be scheduled.")
    if j.get("queue_position"):
        lines.append(f"position: {j['queue_position']} among your organization's waiting jobs")
    start = parse_time(j.get("estimated_start"))
    if start:
        wait = (start - now).total_seconds()
        lines.append(
            f"estimated start: {when(j['estimated_start'])}" + (f" (in {duration(wait)})" if wait > 0 else "")
        )
    else:
        lines.append("estimated start: unknown (running jobs without time limits leave no estimate)")
    return lines


@app.command()
def why(ctx: typer.Context, job: JobArg, json_flag: JsonFlag = False) -> None:
    """Why a job is pending, its place in the queue, and when it may start."""

    async def body(api: Api, out: Output) -> int:
        j = await api.get(f"/jobs/{await resolve_job(api, job)}")
        if out.as_json:
            keys = ("id", "status", "held", "pending_reason", "queue_position", "estimated_start")
            out.json({k: j.get(k) for k in keys})
        else:
            for line in why_text(j, datetime.now(UTC)):
                out.text(line)
        return exits.OK

    with_api(ctx, json_flag, body)


@app.command()
def watch(ctx: typer.Context, job: JobArg, json_flag: JsonFlag = False) -> None:
    """Follow one job's state until it ends (each change as it commits); exits as `submit --follow` does.

    --json: the job, as `show --json` prints it, at each change."""

    async def body(api: Api, out: Output) -> int:
        last = None
        async for j in sse.watch_job(api, await resolve_job(api, job)):
            line = describe(j)
            if out.as_json:
                out.json(j)
            elif line != last:  # a reconnection starts with the current state, maybe the one shown
                out.text(f"{when(datetime.now(UTC).isoformat())}  {line}")
            last = line
            if j.get("status") in TERMINAL:
                return exits.job_exit_code(j)
        return exits.OK

    with_api(ctx, json_flag, body)


# ---------------------------------------------------------------------------------------------- logs


@app.command()
def logs(
    ctx: typer.Context,
    job: JobArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep writing new output until the job ends.")
    ] = False,
    offset: Annotated[int, typer.Option("--offset", help="Start at this byte of the output.", min=0)] = 0,
    json_flag: JsonFlag = False,
) -> None:
    """A job's output (stdout and stderr as captured), from the start or --offset."""

    async def body(api: Api, out: Output) -> int:
        job_id = await resolve_job(api, job)
        chunks: list[str] = []

        def write(text: str) -> None:
            if out.as_json and not follow:
                chunks.append(text)
            elif out.as_json:
                out.json({"kind": "output", "data": text})
            else:
                out.raw(text)

        try:
            info = await follow_output(api, job_id, write, offset=offset, follow=follow)
        except exits.CliError as exc:
            if not route_missing(exc):
                raise
            j = await api.get(f"/jobs/{job_id}")  # 404 here: the job does not exist
            out.warn("this gateway keeps no full output (GET /v1/jobs/{id}/logs); showing the last part")
            tail = j.get("output_tail") or ""
            write(tail)
            info = {"complete": j["status"] in TERMINAL, "truncated": None, "size": None, "offset": len(tail)}
        if out.as_json:
            record = {"job_id": job_id, **info}
            out.json({**record, "output": "".join(chunks)} if not follow else {"kind": "end", **record})
        elif info.get("truncated"):
            out.warn("the output was longer than the limit: its middle was cut (head and tail kept)")
        return exits.OK

    with_api(ctx, json_flag, body)


# ---------------------------------------------------------------------------------------------- cancel / hold / release


async def _each(api: Api, out: Output, refs: list[str], action: str, verb: str, body: Any = None) -> int:
    """One request per job; every job is tried, the first failure's code is the exit code."""
    code = exits.OK
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for ref in refs:
        try:
            job_id = await resolve_job(api, ref)
            j = await api.post(f"/jobs/{job_id}/{action}", body)
        except exits.CliError as exc:
            code = code or exc.code
            failed.append({"job": ref, **exc.as_json()})
            if not out.as_json:
                out.error(exc)
            continue
        done.append(j)
        if not out.as_json:
            pending = action == "cancel" and j.get("status") not in TERMINAL
            out.text(f"{verb} {j['id']}" + (" (cancel requested; it stops on its node)" if pending else ""))
    if out.as_json:
        out.json({"jobs": done, "errors": failed})
    return code


@app.command()
def cancel(
    ctx: typer.Context,
    jobs: Annotated[list[str], typer.Argument(metavar="JOB...", help="Jobs to cancel.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the job's history.")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Cancel jobs (like scancel): queued ones at once, running ones are stopped on their node."""
    with_api(
        ctx,
        json_flag,
        lambda api, out: _each(api, out, jobs, "cancel", "cancelled", {"reason": reason} if reason else None),
    )


@app.command()
def hold(
    ctx: typer.Context,
    jobs: Annotated[list[str], typer.Argument(metavar="JOB...")],
    json_flag: JsonFlag = False,
) -> None:
    """Keep queued jobs from being scheduled until released."""
    with_api(ctx, json_flag, lambda api, out: _each(api, out, jobs, "hold", "held"))


@app.command()
def release(
    ctx: typer.Context,
    jobs: Annotated[list[str], typer.Argument(metavar="JOB...")],
    json_flag: JsonFlag = False,
) -> None:
    """Let held jobs be scheduled again."""
    with_api(ctx, json_flag, lambda api, out: _each(api, out, jobs, "release", "released"))
