"""Profiles, the config file's modes, and which source wins."""

from __future__ import annotations

import io
import json
import stat
import tomllib

import httpx
import pytest

from services.cli import config, exits
from services.cli.app import main
from tests.unit.cli.conftest import KEY

ME = {
    "principal": {"role": "owner", "organization_id": "o", "user_id": "u", "api_key_id": "k", "scopes": []},
    "organization": {"id": "o", "name": "Acme", "created_at": None},
}


def _gateway(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(
                401, json={"title": "Authentication required", "status": 401, "detail": "bad key"}
            )
        return httpx.Response(200, json=ME)

    return httpx.MockTransport(handle)


def _login(monkeypatch, *argv: str, key: str = KEY, seen: list | None = None) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    return main(["login", *argv], transport=_gateway(seen if seen is not None else []))


def test_login_stores_the_key_0600_in_a_0700_folder(monkeypatch, tmp_path, capsys):
    seen: list[httpx.Request] = []
    assert _login(monkeypatch, "--url", "http://gw.test:8080/v1/", seen=seen) == 0
    path = tmp_path / "xdg" / "gpufleet" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = tomllib.loads(path.read_text())
    assert data == {
        "default_profile": "default",
        "profiles": {"default": {"url": "http://gw.test:8080", "api_key": KEY}},
    }
    assert str(seen[0].url) == "http://gw.test:8080/v1/me"  # the key was checked before it was kept
    assert "as owner of Acme" in capsys.readouterr().out


def test_a_wrong_key_is_not_stored(monkeypatch, tmp_path, capsys):
    assert _login(monkeypatch, "--url", "http://gw.test", key="gpf_wrong") == exits.PERMISSION
    assert not (tmp_path / "xdg" / "gpufleet" / "config.toml").exists()
    assert "Authentication required (HTTP 401): bad key" in capsys.readouterr().err


def test_resolution_order(monkeypatch, tmp_path):
    file = config.ConfigFile(config.config_path())
    file.put_profile("default", "http://one.test", "gpf_one", make_default=False)
    file.put_profile("two", "http://two.test", "gpf_two", make_default=False)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config.resolve(None, env).url == "http://one.test"
    assert config.resolve(None, {**env, "GPUFLEET_PROFILE": "two"}).api_key == "gpf_two"
    over = config.resolve(None, {**env, "GPUFLEET_URL": "http://env.test/v1", "GPUFLEET_API_KEY": "gpf_env"})
    assert (over.url, over.api_key, over.url_source, over.key_source) == (
        "http://env.test",
        "gpf_env",
        "GPUFLEET_URL",
        "GPUFLEET_API_KEY",
    )
    # A profile named on the command line is used as written, whatever the environment says.
    named = config.resolve("two", {**env, "GPUFLEET_URL": "http://env.test", "GPUFLEET_API_KEY": "gpf_env"})
    assert (named.url, named.api_key) == ("http://two.test", "gpf_two")
    with pytest.raises(exits.CliError) as caught:
        config.resolve("three", env)
    assert caught.value.code == exits.CONFIG
    file.set_default("two")
    assert config.resolve(None, env).profile == "two"


def test_second_profile_login_and_logout(monkeypatch, tmp_path, capsys):
    assert _login(monkeypatch, "--url", "http://one.test") == 0
    assert _login(monkeypatch, "--url", "http://two.test") == 0  # same (default) profile: replaced
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["--profile", "work", "login", "--url", "http://work.test", "--no-verify"]) == 0
    profiles = config.ConfigFile(config.config_path()).profiles()
    assert {n: p["url"] for n, p in profiles.items()} == {
        "default": "http://two.test",
        "work": "http://work.test",
    }
    capsys.readouterr()
    assert main(["--profile", "work", "config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["url"] == "http://work.test" and shown["profiles"] == ["default", "work"]
    assert KEY not in json.dumps(shown) and shown["api_key"].startswith("gpf_kkkk")
    assert main(["--profile", "work", "logout"]) == 0
    assert set(config.ConfigFile(config.config_path()).profiles()) == {"default"}
    assert stat.S_IMODE(config.config_path().stat().st_mode) == 0o600


def test_nothing_configured_is_a_configuration_error(capsys):
    assert main(["queue"]) == exits.CONFIG
    assert "no gateway URL" in capsys.readouterr().err


def test_a_broken_config_file_is_a_configuration_error(tmp_path, capsys):
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text("profiles = [")
    assert main(["config", "show"]) == exits.CONFIG
    assert "not valid TOML" in capsys.readouterr().err


def test_a_key_file_readable_by_others_is_warned_about(tmp_path, capsys):
    config.ConfigFile(config.config_path()).put_profile(
        "default", "http://one.test", "gpf_one", make_default=True
    )
    config.config_path().chmod(0o644)
    assert main(["config", "show"]) == 0
    assert "readable by others" in capsys.readouterr().err
