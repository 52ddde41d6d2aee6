"""Exit codes: the CLI's own from 64 up, a followed job's own as it ended."""

from __future__ import annotations

import pytest

from services.cli import exits


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("succeeded", 0, 0),
        ("failed", 3, 3),
        ("failed", 66, 66),  # a job's own 66 is returned as is: the job ended
        ("failed", 255, 255),
        ("failed", -9, 137),  # killed by a signal: 128 + N
        ("failed", None, exits.JOB_FAILED_WITHOUT_CODE),
        ("cancelled", None, exits.JOB_CANCELLED),
        ("cancelled", 143, 143),
        ("cancelled", 0, exits.JOB_CANCELLED),  # a cancelled job is never reported as success
        ("timed_out", None, exits.JOB_TIMED_OUT),
        ("timed_out", 137, 137),
    ],
)
def test_job_exit_code(status, code, expected):
    assert exits.job_exit_code({"status": status, "exit_code": code}) == expected


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        (400, 65),
        (401, 77),
        (403, 77),
        (404, 66),
        (409, 65),
        (422, 65),
        (429, 75),
        (500, 70),
        (502, 75),
        (503, 69),
        (504, 75),
        (418, 65),
        (599, 70),
    ],
)
def test_http_status_to_exit_code(http, expected):
    assert exits.for_http_status(http) == expected


def test_the_cli_codes_are_sysexits_and_documented():
    own = [
        exits.USAGE,
        exits.DATA,
        exits.NOT_FOUND,
        exits.UNAVAILABLE,
        exits.SOFTWARE,
        exits.TEMPORARY,
        exits.PERMISSION,
        exits.CONFIG,
    ]
    assert all(64 <= c <= 78 for c in own) and len(set(own)) == len(own)
    assert set(own) <= set(exits.CODES)


def test_a_problem_is_rendered_with_its_field_errors():
    err = exits.ApiError(
        422,
        {
            "title": "Request validation failed",
            "detail": "invalid request: gpu_count",
            "request_id": "r-1",
            "errors": [{"field": "gpu_count", "message": "must be at most 16"}],
        },
        "Unprocessable",
    )
    assert err.code == exits.DATA
    assert err.message == "Request validation failed (HTTP 422): invalid request: gpu_count"
    assert err.details == ["gpu_count: must be at most 16", "request id: r-1"]


def test_a_non_problem_error_body_falls_back_to_the_reason():
    err = exits.ApiError(502, None, "Bad Gateway")
    assert err.message == "Bad Gateway (HTTP 502)" and err.code == exits.TEMPORARY
