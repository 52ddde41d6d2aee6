"""Who the CLI is: login, logout, config (profiles), and the organization's API keys."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from services.cli import config, exits, spec
from services.cli.app import JsonFlag, app, exit_with, output, state_of, with_api
from services.cli.client import Api
from services.cli.render import Output, when


@app.command()
def login(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", help="The gateway, e.g. http://127.0.0.1:8080 (default: the profile's)."),
    ] = None,
    make_default: Annotated[
        bool, typer.Option("--default/--no-default", help="Make this profile the default one.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check the key with GET /v1/me.")
    ] = True,
    json_flag: JsonFlag = False,
) -> None:
    """Store an API key for a gateway in a profile (file mode 0600). The key is read from stdin when
    piped (`echo $KEY | gpufleet login --url URL`), else asked for without echo."""
    state = state_of(ctx)
    out = output(ctx, json_flag)
    name = state.profile or config.resolve(None).profile

    async def run() -> int:
        file = config.ConfigFile(config.config_path())
        stored = file.profiles().get(name, {})
        target = config.normalize_url(url or stored.get("url") or "") if (url or stored.get("url")) else None
        if not target:
            raise exits.CliError("give the gateway with --url (no URL stored for this profile)", exits.USAGE)
        key = _read_key()
        me: dict[str, Any] | None = None
        if verify:
            async with Api(target, key, transport=state.transport) as api:
                me = await api.get("/me")
        file.put_profile(name, target, key, make_default=make_default)
        if out.as_json:
            out.json({"profile": name, "url": target, "path": str(file.path), "me": me})
        else:
            who = ""
            if me:
                who = f" as {me['principal']['role']} of {me['organization']['name']}"
            out.text(f"Logged in to {target}{who} (profile {name}); key stored in {file.path}")
        return exits.OK

    exit_with(out, run)


def _read_key() -> str:
    if sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True)
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        raise exits.CliError("no API key given", exits.USAGE)
    return key


@app.command()
def logout(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Forget every profile.")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Forget the stored key of a profile (the key itself stays valid: `gpufleet keys revoke` ends it)."""
    state = state_of(ctx)
    out = output(ctx, json_flag)

    async def run() -> int:
        file = config.ConfigFile(config.config_path())
        names = sorted(file.profiles()) if all_ else [state.profile or config.resolve(None).profile]
        removed = [n for n in names if file.remove_profile(n)]
        if out.as_json:
            out.json({"removed": removed})
        elif removed:
            out.text(f"Logged out of {', '.join(removed)}")
        else:
            out.text(f"No stored key for profile {names[0] if names else '(none)'}")
        return exits.OK

    exit_with(out, run)


config_app = typer.Typer(help="Show or choose the configuration (profiles).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """The gateway URL, key (masked) and profile this command line would use, and where each came from."""
    state = state_of(ctx)
    out = output(ctx, json_flag)

    async def run() -> int:
        resolved = config.resolve(state.profile)
        data = config.ConfigFile(resolved.path).load()
        profiles = sorted(data.get("profiles", {}))
        info = {
            "config_file": str(resolved.path),
            "profile": resolved.profile,
            "url": resolved.url,
            "url_source": resolved.url_source,
            "api_key": config.mask(resolved.api_key),
            "api_key_source": resolved.key_source,
            "default_profile": data.get("default_profile"),
            "profiles": profiles,
        }
        if out.as_json:
            out.json(info)
        else:
            out.fields(
                [
                    ("config file", info["config_file"]),
                    ("profile", info["profile"]),
                    ("url", f"{resolved.url or '(none)'}  [{resolved.url_source}]"),
                    ("api key", f"{info['api_key']}  [{resolved.key_source}]"),
                    ("profiles", [p + ("*" if p == data.get("default_profile") else "") for p in profiles]),
                ]
            )
        return exits.OK

    exit_with(out, run)


@config_app.command("use")
def config_use(
    ctx: typer.Context,
    profile: Annotated[str, typer.Argument(help="A stored profile.")],
    json_flag: JsonFlag = False,
) -> None:
    """Make a stored profile the default one."""
    out = output(ctx, json_flag)

    async def run() -> int:
        config.ConfigFile(config.config_path()).set_default(profile)
        if out.as_json:
            out.json({"default_profile": profile})
        else:
            out.text(f"Default profile: {profile}")
        return exits.OK

    exit_with(out, run)


# ---------------------------------------------------------------------------------------------- keys

keys_app = typer.Typer(help="API keys of your organization.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("list")
def keys_list(ctx: typer.Context, json_flag: JsonFlag = False) -> None:
    """API keys (never their secrets)."""

    async def body(api: Api, out: Output) -> int:
        reply = await api.get("/api-keys")
        if out.as_json:
            out.json(reply)
            return exits.OK
        out.table(
            ("id", "name", "prefix", "scopes", "created", "expires", "last used", "revoked"),
            [
                [
                    k["id"],
                    k.get("name"),
                    k.get("prefix"),
                    k.get("scopes") or ["(creator's)"],
                    when(k.get("created_at")),
                    when(k.get("expires_at")),
                    when(k.get("last_used_at")),
                    when(k.get("revoked_at")),
                ]
                for k in reply.get("api_keys") or []
            ],
        )
        return exits.OK

    with_api(ctx, json_flag, body)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope, e.g. jobs:read (repeat); none: yours.")
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime: 30d, 12h, 1-00:00 (default: never).")
    ] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Create an API key; its secret is shown once."""

    async def body(api: Api, out: Output) -> int:
        request: dict[str, Any] = {"name": name, "scopes": scope or []}
        if expires_in:
            request["expires_in_seconds"] = spec.seconds(expires_in, "--expires-in")
        created = await api.post("/api-keys", request)
        if out.as_json:
            out.json(created)
        else:
            out.text(f"Created key {created['id']} ({created.get('prefix')})")
            out.text(f"secret: {created['secret']}   (shown once)")
        return exits.OK

    with_api(ctx, json_flag, body)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, key: Annotated[str, typer.Argument(metavar="KEY_ID")], json_flag: JsonFlag = False
) -> None:
    """Revoke an API key: it stops working everywhere within a second."""

    async def body(api: Api, out: Output) -> int:
        await api.delete(f"/api-keys/{key}")
        if out.as_json:
            out.json({"revoked": key})
        else:
            out.text(f"Revoked key {key}")
        return exits.OK

    with_api(ctx, json_flag, body)
