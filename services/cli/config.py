"""Where the CLI finds its gateway and key: environment, profiles in a config file, or both.

The file is ``$XDG_CONFIG_HOME/gpufleet/config.toml`` (``~/.config/gpufleet/config.toml`` without
XDG_CONFIG_HOME), written by ``gpufleet login`` with mode 0600 in a folder of mode 0700::

    default_profile = "default"

    [profiles.default]
    url = "http://127.0.0.1:8080"
    api_key = "gpf_…"

Which profile: ``--profile NAME``, else ``GPUFLEET_PROFILE``, else the file's ``default_profile``,
else ``default``. Which values: a profile named with ``--profile`` is used as written; otherwise
``GPUFLEET_URL`` and ``GPUFLEET_API_KEY`` override the chosen profile's (so a CI job needs no file).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from services.cli import exits

DEFAULT_PROFILE = "default"
ENV_URL, ENV_KEY, ENV_PROFILE = "GPUFLEET_URL", "GPUFLEET_API_KEY", "GPUFLEET_PROFILE"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "gpufleet" / "config.toml"


def normalize_url(url: str) -> str:
    """``http://host:8080``, ``http://host:8080/`` and ``http://host:8080/v1`` all name one gateway."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise exits.CliError(f"not an http(s) URL: {url!r}", exits.CONFIG)
    return url


@dataclass(frozen=True)
class Resolved:
    """The settings one command runs with, and where each came from (for ``config show``)."""

    profile: str
    url: str | None
    api_key: str | None
    url_source: str
    key_source: str
    path: Path

    def require(self) -> tuple[str, str]:
        if not self.url:
            raise exits.CliError(
                f"no gateway URL: set {ENV_URL} or run `gpufleet login --url URL` (profile {self.profile!r})",
                exits.CONFIG,
            )
        if not self.api_key:
            raise exits.CliError(
                f"no API key: set {ENV_KEY} or run `gpufleet login` (profile {self.profile!r})", exits.CONFIG
            )
        return self.url, self.api_key


class ConfigFile:
    """The profiles file. Read leniently (a missing file is empty), written atomically as 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise exits.CliError(f"cannot read {self.path}: {exc.strerror}", exits.CONFIG) from exc
        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise exits.CliError(f"{self.path} is not valid TOML: {exc}", exits.CONFIG) from exc
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
            raise exits.CliError(f"{self.path}: [profiles.NAME] tables expected", exits.CONFIG)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077 and any("api_key" in p for p in profiles.values()):
            print(
                f"gpufleet: warning: {self.path} holds API keys but is readable by others "
                f"(mode {mode:04o}); run: chmod 600 {self.path}",
                file=sys.stderr,
            )
        return data

    def save(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        # mkstemp creates the file 0600, so the key is never readable by others, not even briefly.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".config.", suffix=".toml")
        try:
            with os.fdopen(fd, "wb") as f:
                tomli_w.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def profiles(self) -> dict[str, dict[str, Any]]:
        return dict(self.load().get("profiles", {}))

    def put_profile(self, name: str, url: str, api_key: str, *, make_default: bool) -> None:
        data = self.load()
        data.setdefault("profiles", {})[name] = {"url": url, "api_key": api_key}
        if make_default or "default_profile" not in data:
            data["default_profile"] = name
        self.save(data)

    def remove_profile(self, name: str) -> bool:
        data = self.load()
        if name not in data.get("profiles", {}):
            return False
        del data["profiles"][name]
        if data.get("default_profile") == name:
            data.pop("default_profile")
            if data["profiles"]:
                data["default_profile"] = sorted(data["profiles"])[0]
        self.save(data)
        return True

    def set_default(self, name: str) -> None:
        data = self.load()
        if name not in data.get("profiles", {}):
            raise exits.CliError(f"no profile {name!r} in {self.path}", exits.CONFIG)
        data["default_profile"] = name
        self.save(data)


def resolve(profile_flag: str | None, env: Mapping[str, str] | None = None) -> Resolved:
    env = os.environ if env is None else env
    path = config_path(env)
    data = ConfigFile(path).load()
    name = profile_flag or env.get(ENV_PROFILE) or data.get("default_profile") or DEFAULT_PROFILE
    profiles = data.get("profiles", {})
    if profile_flag and profile_flag not in profiles:
        raise exits.CliError(f"no profile {profile_flag!r} in {path} (see `gpufleet login`)", exits.CONFIG)
    stored = profiles.get(name, {})
    url, url_source = stored.get("url"), f"profile {name}" if stored.get("url") else "unset"
    key, key_source = stored.get("api_key"), f"profile {name}" if stored.get("api_key") else "unset"
    if not profile_flag:
        if env.get(ENV_URL):
            url, url_source = env[ENV_URL], ENV_URL
        if env.get(ENV_KEY):
            key, key_source = env[ENV_KEY], ENV_KEY
    return Resolved(
        profile=name,
        url=normalize_url(url) if url else None,
        api_key=key or None,
        url_source=url_source,
        key_source=key_source,
        path=path,
    )


def mask(key: str | None) -> str:
    """Enough of a key to recognise it, never enough to use it."""
    if not key:
        return "(none)"
    return key[:8] + "…" + key[-4:] if len(key) > 16 else "****"
