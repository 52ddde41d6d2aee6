"""Projects of your organization (docs/projects.md): list, create, and a project's members."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli import exits
from services.cli.app import JsonFlag, app, with_api
from services.cli.client import Api
from services.cli.render import Output, when

projects_app = typer.Typer(help="Projects of your organization (docs/projects.md).", no_args_is_help=True)
app.add_typer(projects_app, name="projects")

ROLES = ("owner", "contributor", "viewer")


@projects_app.command("list")
def projects_list(
    ctx: typer.Context,
    archived: Annotated[bool, typer.Option("--archived", help="Archived projects too.")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """The organization's projects (a project-bound key sees only its own)."""

    async def body(api: Api, out: Output) -> int:
        reply = await api.get("/projects", include_archived="true" if archived else None)
        if out.as_json:
            out.json(reply)
            return exits.OK
        out.table(
            ("id", "slug", "name", "created", "archived"),
            [
                [p["id"], p.get("slug"), p.get("name"), when(p.get("created_at")), when(p.get("archived_at"))]
                for p in reply.get("projects") or []
            ],
        )
        return exits.OK

    with_api(ctx, json_flag, body)


@projects_app.command("create")
def projects_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The project's name.")],
    slug: Annotated[
        str | None, typer.Option("--slug", help="Unique in the organization (default: from the name).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the project is for.")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Create a project (organization owners and admins)."""

    async def body(api: Api, out: Output) -> int:
        request: dict[str, Any] = {"name": name}
        if slug:
            request["slug"] = slug
        if description:
            request["description"] = description
        created = await api.post("/projects", request)
        if out.as_json:
            out.json(created)
        else:
            out.text(f"Created project {created['slug']} ({created['id']})")
        return exits.OK

    with_api(ctx, json_flag, body)


def _member_change(value: str) -> tuple[str, str]:
    user, sep, role = value.partition("=")
    if not sep or not user or role not in ROLES:
        raise exits.CliError(
            f"--set takes USER_ID=ROLE, ROLE one of {', '.join(ROLES)}: {value!r}", exits.USAGE
        )
    return user, role


@projects_app.command("members")
def projects_members(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(metavar="PROJECT_ID")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="USER_ID=ROLE", help="Add a member or change their role (repeat)."),
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", metavar="USER_ID", help="Remove a member (repeat).")
    ] = None,
    json_flag: JsonFlag = False,
) -> None:
    """A project's members; with --set / --remove, change them first (organization owners and admins, or
    the project's owners)."""

    async def body(api: Api, out: Output) -> int:
        changes = [_member_change(v) for v in set_ or []]
        for user, role in changes:
            await api.request("PUT", f"/projects/{project}/members/{user}", json_body={"role": role})
        for user in remove or []:
            await api.delete(f"/projects/{project}/members/{user}")
        reply = await api.get(f"/projects/{project}/members")
        if out.as_json:
            out.json(reply)
            return exits.OK
        out.table(
            ("user", "email", "name", "role", "added"),
            [
                [m["user_id"], m.get("email"), m.get("name"), m.get("role"), when(m.get("added_at"))]
                for m in reply.get("members") or []
            ],
        )
        return exits.OK

    with_api(ctx, json_flag, body)
