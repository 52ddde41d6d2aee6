"""Job request bodies from flags, job files and the command after ``--``."""

from __future__ import annotations

import json

import pytest

from services.cli import exits, spec


@pytest.mark.parametrize(
    ("text", "mb"),
    [("1024", 1024), ("512M", 512), ("16G", 16384), ("16GiB", 16384), ("1T", 1048576), ("2gb", 2048)],
)
def test_sizes(text, mb):
    assert spec.megabytes(text, "--memory") == mb


@pytest.mark.parametrize(
    ("text", "secs"),
    [
        ("90", 5400),
        ("1:30", 90),
        ("1:30:00", 5400),
        ("2h", 7200),
        ("30m", 1800),
        ("45s", 45),
        ("1d", 86400),
        ("1-00:00", 86400),
        ("1-02:03:04", 93784),
        ("2-12", 2 * 86400 + 12 * 3600),
    ],
)
def test_durations_in_slurm_and_unit_forms(text, secs):
    assert spec.seconds(text, "--time-limit") == secs


@pytest.mark.parametrize("bad", ["soon", "1:2:3:4", "x-1", "-5"])
def test_bad_durations_are_usage_errors(bad):
    with pytest.raises(exits.CliError) as caught:
        spec.seconds(bad, "--time-limit")
    assert caught.value.code == exits.USAGE


def test_one_argument_is_a_shell_line_several_are_quoted():
    assert spec.command_line(["echo a; exit 3"]) == "echo a; exit 3"
    assert spec.command_line(["python", "train.py", "--name", "my run"]) == "python train.py --name 'my run'"


def test_env_is_exported_ahead_of_the_command():
    body = spec.build({}, {"env": spec.env_pairs(["A=1", "B=two words"])}, ["./run"])
    assert body["command"] == "export A=1 B='two words'; ./run"
    with pytest.raises(exits.CliError):
        spec.env_pairs(["1BAD=x"])


def test_file_then_flags_then_command(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "command: [python, train.py]\ngpu_count: 2\nram_mb: 8G\ntime_limit_seconds: 2h\nname: a\nenv: {X: 1}\n"
    )
    body = spec.build(spec.load_file(path), {"name": "b", "priority": None}, [])
    assert body == {
        "command": "export X=1; python train.py",
        "gpu_count": 2,
        "ram_mb": 8192,
        "time_limit_seconds": 7200,
        "name": "b",
    }


def test_json_job_file_and_its_errors(tmp_path):
    good = tmp_path / "job.json"
    good.write_text(json.dumps({"command": "true", "gpus": 1}))
    with pytest.raises(exits.CliError) as caught:
        spec.load_file(good)
    assert caught.value.code == exits.DATA and "gpus" in caught.value.message
    with pytest.raises(exits.CliError) as missing:
        spec.load_file(tmp_path / "nope.yaml")
    assert missing.value.code == exits.NOT_FOUND
    with pytest.raises(exits.CliError) as no_command:
        spec.build({}, {}, [])
    assert no_command.value.code == exits.USAGE
