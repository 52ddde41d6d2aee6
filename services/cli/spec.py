"""A job's request body (``POST /v1/jobs``) from a job file, flags and the command after ``--``.

A job file is YAML or JSON with the REST fields (``command``, ``gpu_count``, ``gpu_memory_mb``,
``gpu_type``, ``priority``, ``name``, ``nodes``, ``cpu_cores``, ``ram_mb``, ``time_limit_seconds``,
``hold``, ``no_requeue``, ``webhook_url``, ``project_id``, ``image``), plus ``env`` (a mapping) and a ``command`` that may be a
list of arguments. Sizes and durations may be written as in the flags (``"16G"``, ``"2h"``). Flags
given on the command line override the file.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from services.cli import exits

FIELDS = (
    "command",
    "gpu_count",
    "gpu_memory_mb",
    "gpu_type",
    "priority",
    "name",
    "nodes",
    "cpu_cores",
    "ram_mb",
    "time_limit_seconds",
    "hold",
    "no_requeue",
    "webhook_url",
    "project_id",
    "image",
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_MB_PER = {"": 1, "B": 1 / 1024**2, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
_UNIT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_SECONDS_PER = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def megabytes(value: str | int, what: str) -> int:
    """``1024`` (MB), ``512M``, ``16G``, ``16GiB``, ``1T`` -> megabytes (binary units)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise exits.CliError(f"{what}: not a size: {value!r} (e.g. 1024, 512M, 16G)", exits.USAGE)
    number, unit = float(match[1]), (match[2] or "")[:1].upper()
    return round(number * _MB_PER[unit])


def seconds(value: str | int, what: str) -> int:
    """Slurm's ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``, or ``90s``, ``30m``, ``2h``, ``1d``."""
    if isinstance(value, int):
        return value
    text = value.strip()
    unit = _UNIT_DURATION.match(text)
    if unit:
        return round(float(unit[1]) * _SECONDS_PER[unit[2].lower()])
    days = 0
    if "-" in text:
        day_part, _, text = text.partition("-")
        if not day_part.isdigit():
            raise exits.CliError(f"{what}: not a duration: {value!r}", exits.USAGE)
        days = int(day_part)
    parts = text.split(":")
    if not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise exits.CliError(
            f"{what}: not a duration: {value!r} (e.g. 90, 1:30:00, 2h, 1-00:00)", exits.USAGE
        )
    nums = [int(p) for p in parts]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        h, m, s = [*nums, 0, 0][:3]
    elif len(nums) == 1:  # minutes, as Slurm's --time
        h, m, s = 0, nums[0], 0
    elif len(nums) == 2:  # MM:SS
        h, m, s = 0, nums[0], nums[1]
    else:
        h, m, s = nums
    return days * 86400 + h * 3600 + m * 60 + s


def env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise exits.CliError(f"--env: expected NAME=VALUE, got {pair!r}", exits.USAGE)
        out[name] = value
    return out


def command_line(args: Sequence[str]) -> str:
    """One argument is a shell command line as typed (``'make; ./run'``); several are quoted and joined."""
    if len(args) == 1:
        return args[0]
    return shlex.join(args)


def with_env(command: str, env: Mapping[str, str]) -> str:
    """The API has no environment field: variables are exported ahead of the command (so they are
    visible in the job's command, like everything else in it: pass no secrets this way)."""
    if not env:
        return command
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"export {exports}; {command}"


def load_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise exits.CliError(f"job file not found: {path}", exits.NOT_FOUND) from exc
    except OSError as exc:
        raise exits.CliError(f"cannot read job file {path}: {exc.strerror}", exits.NOT_FOUND) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise exits.CliError(
            f"job file {path} is not valid {path.suffix or 'YAML'}: {exc}", exits.DATA
        ) from exc
    if not isinstance(data, dict):
        raise exits.CliError(f"job file {path}: a mapping of job fields expected", exits.DATA)
    unknown = sorted(set(data) - {*FIELDS, "env"})
    if unknown:
        raise exits.CliError(
            f"job file {path}: unknown field(s) {', '.join(unknown)}",
            exits.DATA,
            details=[f"known fields: {', '.join((*FIELDS, 'env'))}"],
        )
    return data


def build(file_fields: Mapping[str, Any], flags: Mapping[str, Any], args: Sequence[str]) -> dict[str, Any]:
    """The request body: the file's fields, then the flags that were given, then the command."""
    body: dict[str, Any] = {}
    env: dict[str, str] = {}
    for key, value in file_fields.items():
        if key == "env":
            if not isinstance(value, dict):
                raise exits.CliError("job file: env must be a mapping of NAME: value", exits.DATA)
            env.update(env_pairs([f"{k}={v}" for k, v in value.items()]))
        elif key == "command" and isinstance(value, list):
            body["command"] = command_line([str(v) for v in value])
        elif key in ("gpu_memory_mb", "ram_mb") and isinstance(value, str):
            body[key] = megabytes(value, key)
        elif key == "time_limit_seconds" and isinstance(value, str):
            body[key] = seconds(value, key)
        else:
            body[key] = value
    env.update(flags.get("env") or {})
    body.update({k: v for k, v in flags.items() if k != "env" and v is not None})
    if args:
        body["command"] = command_line(args)
    if not body.get("command"):
        raise exits.CliError("no command: give it after `--` (or as `command:` in --file)", exits.USAGE)
    body["command"] = with_env(str(body["command"]), env)
    return body
