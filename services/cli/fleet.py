"""Fleet, money and happenings: gpus, nodes, cost, events, webhooks."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

import typer

from services.cli import exits, sse
from services.cli.app import JsonFlag, app, with_api
from services.cli.client import Api
from services.cli.jobs import resolve_job
from services.cli.render import Output, parse_time, short_id, when

GROUPS = ("day", "gpu_type", "project")


@app.command()
def gpus(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only GPUs in this state.")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="Only this type.")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """GPUs your organization can use, with their state and price."""

    async def body(api: Api, out: Output) -> int:
        reply = await api.get("/gpus", status=status, gpu_type=gpu_type)
        items = reply.get("gpus") or []
        if out.as_json:
            out.json(reply)
        elif not items:
            out.info("no GPUs")
        else:
            out.table(
                ("id", "node", "idx", "type", "memory", "status", "in use", "$/hour", "provider", "spot"),
                [
                    [
                        short_id(g["id"]),
                        g.get("node_name"),
                        g.get("index"),
                        g.get("gpu_type"),
                        f"{g.get('memory_total_mb', 0) // 1024} GB",
                        g.get("status"),
                        g.get("in_use"),
                        g.get("cost_per_hour"),
                        g.get("provider"),
                        g.get("is_spot"),
                    ]
                    for g in items
                ],
            )
        return exits.OK

    with_api(ctx, json_flag, body)


@app.command()
def nodes(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """Nodes your organization can use (shared and its own), with their GPUs."""

    async def body(api: Api, out: Output) -> int:
        items = await api.pages("/nodes", "items")
        if out.as_json:
            out.json({"items": items})
            return exits.OK
        if not items:
            out.info("no nodes")
            return exits.OK
        rows = []
        for n in items:
            node_gpus = n.get("gpus") or []
            free = sum(1 for g in node_gpus if g.get("status") == "free")
            types = sorted({str(g.get("gpu_type")) for g in node_gpus})
            rows.append(
                [
                    short_id(n.get("id")),
                    n.get("hostname"),
                    n.get("status"),
                    n.get("provider"),
                    n.get("spot"),
                    n.get("cpu_cores"),
                    f"{(n.get('ram_mb') or 0) // 1024} GB",
                    f"{free}/{len(node_gpus)} free",
                    types,
                    when(n.get("last_heartbeat_at")),
                ]
            )
        out.table(
            ("id", "hostname", "status", "provider", "spot", "cpus", "ram", "gpus", "types", "heartbeat"),
            rows,
        )
        return exits.OK

    with_api(ctx, json_flag, body)


# ---------------------------------------------------------------------------------------------- cost


@app.command()
def cost(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Argument(metavar="[JOB]", help="One job's cost.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Group: day, gpu_type or project.")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="RFC 3339 start (default: 30 days ago).")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="RFC 3339 end (default: now).")] = None,
    no_running: Annotated[
        bool, typer.Option("--no-running", help="Leave out the cost so far of running jobs.")
    ] = False,
    json_flag: JsonFlag = False,
) -> None:
    """What jobs cost (like sacct): one job, the recent ones, or grouped --by day / gpu_type / project."""
    if by is not None and by not in GROUPS:
        raise typer.BadParameter(f"one of {', '.join(GROUPS)}", param_hint="--by")
    if job and by:
        raise typer.BadParameter("give a JOB or --by, not both", param_hint="--by")

    async def body(api: Api, out: Output) -> int:
        if job:
            return await _job_cost(api, out, await resolve_job(api, job))
        if by:
            summary = await api.get(
                "/costs/summary",
                group_by=by,
                **{"from": since, "to": until},
                include_running="false" if no_running else None,
            )
            if out.as_json:
                out.json(summary)
                return exits.OK
            rows = [
                [
                    g.get("key") or "(none)",
                    g.get("jobs"),
                    g.get("gpu_seconds"),
                    g.get("cost"),
                    g.get("running_cost"),
                ]
                for g in summary.get("groups") or []
            ]
            total = summary.get("total") or {}
            rows.append(
                ["total", None, total.get("gpu_seconds"), total.get("cost"), total.get("running_cost")]
            )
            currency = summary.get("currency", "USD")
            out.table((by, "jobs", "gpu seconds", f"cost {currency}", "running"), rows)
            return exits.OK
        reply = await api.get("/costs")
        if out.as_json:
            out.json(reply)
            return exits.OK
        rows = [
            [
                c["job_id"],
                c.get("gpu_count"),
                c.get("held_seconds"),
                c.get("total_cost"),
                when(c.get("recorded_at")),
            ]
            for c in reply.get("costs") or []
        ]
        rows.append(["total (this page)", None, None, reply.get("total_cost"), None])
        out.table(("job", "gpus", "held s", "cost", "recorded"), rows)
        return exits.OK

    with_api(ctx, json_flag, body)


async def _job_cost(api: Api, out: Output, job_id: str) -> int:
    try:
        c = await api.get(f"/jobs/{job_id}/cost")
    except exits.ApiError as exc:
        if exc.status != 404:
            raise
        j = await api.get(f"/jobs/{job_id}")  # a 404 here: no such job
        raise exits.CliError(
            f"no cost recorded yet for job {job_id} ({j['status']}): a cost is recorded when an attempt ends",
            exits.NOT_FOUND,
            details=["`gpufleet cost --by day` includes the cost so far of running jobs"],
        ) from exc
    if out.as_json:
        out.json(c)
        return exits.OK
    out.fields(
        [
            ("job", c["job_id"]),
            ("total", f"{c['total_cost']} {c.get('currency', 'USD')}"),
            ("gross / credit", f"{c.get('gross_cost')} / {c.get('credit')}"),
            ("gpus", c.get("gpu_count")),
            ("held seconds", c.get("held_seconds")),
        ]
    )
    out.text("")
    out.table(
        ("attempt", "outcome", "gpus", "held s", "net cost", "credit"),
        [
            [
                a["attempt"],
                a.get("outcome"),
                a.get("gpu_count"),
                a.get("held_seconds"),
                a.get("net_cost"),
                a.get("credit"),
            ]
            for a in c.get("attempts") or []
        ],
    )
    return exits.OK


# ---------------------------------------------------------------------------------------------- events


def event_line(event: sse.Event) -> str:
    ce = event.cloudevent
    data = event.data
    job = data.get("job") if isinstance(data.get("job"), dict) else None
    subject = ce.get("subject") or (job or {}).get("job_id") or data.get("job_id") or "-"
    parsed = parse_time(ce.get("time"))
    at = parsed.astimezone(UTC).strftime("%H:%M:%S") if parsed else "--:--:--"
    detail = ""
    if job:
        detail = str(job.get("status"))
        if job.get("exit_code") is not None:
            detail += f" exit={job['exit_code']}"
        if data.get("reason"):
            detail += f" ({data['reason']})"
    elif "total_cost" in data:
        detail = f"cost {data['total_cost']} {data.get('currency', 'USD')} attempt {data.get('attempt', 1)}"
    return f"{at}  {event.type:<26}  {subject}  {detail}".rstrip()


@app.command()
def events(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option("--job", "-j", help="Only this job's events.")] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only these CloudEvent types (repeat).")
    ] = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="Replay the retained log first.")] = False,
    last_event_id: Annotated[
        str | None, typer.Option("--last-event-id", help="Resume after this cursor (from --json output).")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", "-n", help="Stop after this many events.", min=1)
    ] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Tail the organization's live events (jobs and costs); Ctrl-C stops. --json: one event per line."""

    async def body(api: Api, out: Output) -> int:
        job_id = await resolve_job(api, job) if job else None
        seen = 0
        async for item in sse.stream(
            api, job_id=job_id, types=types or (), last_event_id=last_event_id, from_start=from_start
        ):
            if isinstance(item, sse.Opened):
                if item.resumed:
                    out.info("(reconnected; resumed after the last event seen)")
                continue
            if out.as_json:
                out.json(item.as_json())
            else:
                out.text(event_line(item))
            seen += 1
            if count is not None and seen >= count:
                break
        return exits.OK

    with_api(ctx, json_flag, body)


# ---------------------------------------------------------------------------------------------- webhooks

webhooks_app = typer.Typer(help="Webhooks of your organization and their deliveries.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("list")
def webhooks_list(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """Registered webhooks."""

    async def body(api: Api, out: Output) -> int:
        reply = await api.get("/webhooks")
        if out.as_json:
            out.json(reply)
            return exits.OK
        out.table(
            ("id", "url", "events", "status", "failures", "last used"),
            [
                [
                    w["id"],
                    w["url"],
                    w.get("events") or ["(all job events)"],
                    w.get("status"),
                    w.get("consecutive_failures"),
                    when(w.get("last_used")),
                ]
                for w in reply.get("webhooks") or []
            ],
        )
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("create")
def webhooks_create(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where deliveries are POSTed.")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help="An event name, e.g. job.succeeded (repeat).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Register a webhook; its signing secret is shown once."""

    async def body(api: Api, out: Output) -> int:
        request: dict[str, Any] = {"url": url, "events": event or []}
        if description:
            request["description"] = description
        created = await api.post("/webhooks", request)
        if out.as_json:
            out.json(created)
        else:
            out.text(f"Created webhook {created['id']}")
            out.text(f"secret: {created['secret']}   (shown once: verify deliveries with it)")
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("delete")
def webhooks_delete(
    ctx: typer.Context,
    webhook: Annotated[str, typer.Argument(metavar="WEBHOOK")],
    json_flag: JsonFlag = False,
) -> None:
    """Delete a webhook."""

    async def body(api: Api, out: Output) -> int:
        await api.delete(f"/webhooks/{webhook}")
        if out.as_json:
            out.json({"deleted": webhook})
        else:
            out.text(f"Deleted webhook {webhook}")
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("update")
def webhooks_update(
    ctx: typer.Context,
    webhook: Annotated[str, typer.Argument(metavar="WEBHOOK")],
    url: Annotated[str | None, typer.Option("--url", help="A new target URL.")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="Replace the events with these (repeat); see --all-events."),
    ] = None,
    all_events: Annotated[bool, typer.Option("--all-events", help="Deliver every job event.")] = False,
    description: Annotated[str | None, typer.Option("--description", help='"" removes it.')] = None,
    enable: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Re-enable (its failures are forgotten) or switch off."),
    ] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Change a webhook; what is not given stays as it is."""

    async def body(api: Api, out: Output) -> int:
        if event and all_events:
            raise exits.CliError("--event and --all-events are exclusive", exits.USAGE)
        request: dict[str, Any] = {}
        if url is not None:
            request["url"] = url
        if event or all_events:
            request["events"] = list(event or [])
        if description is not None:
            request["description"] = description or None
        if enable is not None:
            request["status"] = "active" if enable else "disabled"
        if not request:
            raise exits.CliError(
                "nothing to change: give --url, --event, --description or --enable", exits.USAGE
            )
        updated = await api.request("PATCH", f"/webhooks/{webhook}", json_body=request)
        if out.as_json:
            out.json(updated)
        else:
            events = ", ".join(updated.get("events") or []) or "(all job events)"
            out.text(f"Updated webhook {updated['id']}: {updated['url']} [{updated['status']}] {events}")
        return exits.OK

    with_api(ctx, json_flag, body)


# How long a rotated secret keeps signing beside the new one (the server's default when not given).
OverlapOption = Annotated[
    int | None,
    typer.Option(
        "--overlap",
        min=0,
        max=7 * 24 * 3600,
        help="Seconds the old secret keeps signing beside the new one (default 86400; 0: none).",
    ),
]


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(
    ctx: typer.Context,
    webhook: Annotated[str, typer.Argument(metavar="WEBHOOK")],
    overlap: OverlapOption = None,
    json_flag: JsonFlag = False,
) -> None:
    """A new signing secret, shown once; the old one keeps signing during the overlap."""

    async def body(api: Api, out: Output) -> int:
        request: dict[str, Any] = {} if overlap is None else {"overlap_seconds": overlap}
        rotated = await api.post(f"/webhooks/{webhook}/rotate-secret", request)
        if out.as_json:
            out.json(rotated)
        else:
            out.text(f"Rotated the secret of webhook {rotated['id']}")
            out.text(f"secret: {rotated['secret']}   (shown once: verify deliveries with it)")
            until = rotated.get("previous_secret_expires_at")
            out.text(f"the old secret signs too until {until}" if until else "the old secret no longer signs")
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("rotate-job-secret")
def webhooks_rotate_job_secret(
    ctx: typer.Context,
    overlap: OverlapOption = None,
    json_flag: JsonFlag = False,
) -> None:
    """A new secret for jobs' own webhook_url (owners and admins), shown once."""

    async def body(api: Api, out: Output) -> int:
        request: dict[str, Any] = {} if overlap is None else {"overlap_seconds": overlap}
        rotated = await api.post("/webhooks/job-secret/rotate", request)
        if out.as_json:
            out.json(rotated)
        else:
            out.text(f"secret: {rotated['secret']}   (shown once: verify job deliveries with it)")
            until = rotated.get("previous_secret_expires_at")
            out.text(f"the old secret signs too until {until}" if until else "the old secret no longer signs")
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    ctx: typer.Context,
    delivery: Annotated[str, typer.Argument(metavar="DELIVERY")],
    json_flag: JsonFlag = False,
) -> None:
    """Send a delivery again now, with the same event id (see `webhooks deliveries`)."""

    async def body(api: Api, out: Output) -> int:
        again = await api.post(f"/webhook-deliveries/{delivery}/redeliver")
        if out.as_json:
            out.json(again)
        else:
            out.text(f"Redelivering {again['id']} (event {again['event_id']}) to {again['url']}")
        return exits.OK

    with_api(ctx, json_flag, body)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option("--job", help="Only deliveries about this job.")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="Only deliveries to this webhook.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, max=200)] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Recent deliveries, newest first, with their attempts."""

    async def body(api: Api, out: Output) -> int:
        job_id = await resolve_job(api, job) if job else None
        reply = await api.get("/webhook-deliveries", job_id=job_id, webhook_id=webhook, limit=limit)
        if out.as_json:
            out.json(reply)
            return exits.OK
        rows = []
        for d in reply.get("deliveries") or []:
            last = (d.get("attempt_log") or [{}])[-1]
            rows.append(
                [
                    d["id"],
                    d.get("event_type"),
                    short_id(d.get("job_id")),
                    d.get("status"),
                    d.get("attempts"),
                    last.get("response_status") or last.get("error"),
                    when(d.get("created_at")),
                    d.get("url"),
                ]
            )
        out.table(("id", "event", "job", "status", "attempts", "last answer", "created", "url"), rows)
        return exits.OK

    with_api(ctx, json_flag, body)
