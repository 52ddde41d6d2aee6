"""The ``gpufleet`` program: global options, one way to run a command, exit codes (``exits``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import httpx
import typer

from services.cli import config, exits
from services.cli.client import Api
from services.cli.render import Output

# Typer's click (its own vendored copy in recent releases, the click package in older ones).
_click_errors = importlib.import_module(typer.BadParameter.__module__)

app = typer.Typer(
    name="gpufleet",
    help="Submit, watch and account for jobs on a gpufleet GPU fleet (see docs/cli.md).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@dataclass
class State:
    profile: str | None = None
    json: bool = False
    # Tests hand in an httpx.MockTransport; the program itself uses the network.
    transport: httpx.AsyncBaseTransport | None = None


JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout (stable fields).")]


def _version(value: bool) -> None:
    if value:
        from services.cli.client import _version as version

        typer.echo(f"gpufleet {version()}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile of the config file to use (default: $GPUFLEET_PROFILE, then the file's default).",
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON output for every command.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state = ctx.ensure_object(State)
    state.profile = profile
    state.json = state.json or json_


def state_of(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def output(ctx: typer.Context, json_flag: bool) -> Output:
    return Output(as_json=json_flag or state_of(ctx).json)


def exit_with(out: Output, body: Callable[[], Awaitable[int | None]]) -> None:
    """Run one command's coroutine; a CliError is printed and becomes the exit code."""
    try:
        code = asyncio.run(_guarded(body))
    except exits.CliError as exc:
        out.error(exc)
        raise typer.Exit(exc.code) from None
    except KeyboardInterrupt:
        raise typer.Exit(exits.INTERRUPTED) from None
    raise typer.Exit(code or 0)


async def _guarded(body: Callable[[], Awaitable[int | None]]) -> int | None:
    return await body()


def with_api(
    ctx: typer.Context, json_flag: bool, body: Callable[[Api, Output], Awaitable[int | None]]
) -> None:
    """The shape of every command that calls the API."""
    state = state_of(ctx)
    out = output(ctx, json_flag)

    async def run() -> int | None:
        url, key = config.resolve(state.profile).require()
        async with Api(url, key, transport=state.transport) as api:
            return await body(api, out)

    exit_with(out, run)


def main(argv: Sequence[str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Run the program once and return its exit code (tests call this with a MockTransport)."""
    # Imported for their commands' registration on ``app``.
    from services.cli import account, fleet, jobs, projects  # noqa: F401

    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="gpufleet",
            standalone_mode=False,
            obj=State(transport=transport),
        )
    except _click_errors.ClickException as exc:
        # Usage errors (and any other refusal of the command line) are 64, never click's 2, which a
        # followed job could have exited with.
        exc.show()
        return exits.USAGE
    except _click_errors.Abort:
        return exits.INTERRUPTED
    except BrokenPipeError:
        # `gpufleet queue | head`: the reader left; nothing more to say (not even at exit's flush).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.OK
    return code if isinstance(code, int) else exits.OK


def run() -> None:
    """The ``gpufleet`` entry point."""
    sys.exit(main())
