"""Exit codes scripts rely on, and the errors that carry them.

0 is success. The CLI's own failures use the sysexits(3) codes (64 and up), so that a caller can tell
them apart from what ``--follow`` returns: the followed job's own exit code (0-255). A job may itself
exit 64 or more; the rule is that the job's code is returned only once the job has ended, and then
the CLI says so on stderr (``job … ended: failed, exit code 66``); every error of the CLI itself is
printed on stderr as ``gpufleet: error: …``. With ``--json`` the last line on stdout tells which one
it was (``"kind": "finished"`` with the job, or ``"kind": "error"``).
"""

from __future__ import annotations

from typing import Any

OK = 0
USAGE = 64  # EX_USAGE: bad arguments or options
DATA = 65  # EX_DATAERR: the request or a job file was refused as invalid (400, 409, 413, 422)
NOT_FOUND = 66  # EX_NOINPUT: no such job / resource (404), or a job file that does not exist
SOFTWARE = 70  # EX_SOFTWARE: the server failed (500) or answered outside its contract
UNAVAILABLE = 69  # EX_UNAVAILABLE: the gateway cannot be reached, or a service is down (503)
TEMPORARY = 75  # EX_TEMPFAIL: timed out, 502/504/429, a stream that could not be resumed
PERMISSION = 77  # EX_NOPERM: missing or wrong API key (401), or the key may not do this (403)
CONFIG = 78  # EX_CONFIG: no URL or key configured, or an unreadable configuration file
INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

# A followed job that ended without an exit code of its own.
JOB_TIMED_OUT = 124  # as GNU timeout(1)
JOB_CANCELLED = 143  # as if terminated by SIGTERM (128 + 15), which is what a cancel sends
JOB_FAILED_WITHOUT_CODE = 125  # never started, or lost with no_requeue: no process exit to report

CODES: dict[int, str] = {
    OK: "success",
    USAGE: "usage error (bad arguments or options)",
    DATA: "the request or job file was refused as invalid (HTTP 400, 409, 413, 422)",
    NOT_FOUND: "not found (HTTP 404), or a job file that does not exist",
    UNAVAILABLE: "the gateway cannot be reached, or a service it needs is down (HTTP 503)",
    SOFTWARE: "the server failed (HTTP 500) or answered outside its contract",
    TEMPORARY: "temporary failure: timed out, HTTP 429/502/504, a stream that could not be resumed",
    PERMISSION: "missing or wrong API key (HTTP 401), or the key may not do this (HTTP 403)",
    CONFIG: "no gateway URL or API key configured, or an unreadable configuration file",
    INTERRUPTED: "interrupted (Ctrl-C)",
}

_BY_HTTP_STATUS = {
    400: DATA,
    401: PERMISSION,
    403: PERMISSION,
    404: NOT_FOUND,
    409: DATA,
    413: DATA,
    422: DATA,
    429: TEMPORARY,
    500: SOFTWARE,
    502: TEMPORARY,
    503: UNAVAILABLE,
    504: TEMPORARY,
}


def for_http_status(status: int) -> int:
    if status in _BY_HTTP_STATUS:
        return _BY_HTTP_STATUS[status]
    return DATA if 400 <= status < 500 else SOFTWARE


class CliError(Exception):
    """A failure of the CLI itself, printed on stderr; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []

    def as_json(self) -> dict[str, Any]:
        return {"kind": "error", "exit_code": self.code, "message": self.message, "details": self.details}


class ApiError(CliError):
    """The API answered with an error: an RFC 9457 problem when it could, rendered readably."""

    def __init__(self, status: int, problem: dict[str, Any] | None, fallback: str) -> None:
        self.status = status
        self.problem = problem or {}
        title = self.problem.get("title") or fallback
        detail = self.problem.get("detail")
        message = f"{title} (HTTP {status})" + (f": {detail}" if detail and detail != title else "")
        details = [
            f"{e.get('field') or 'body'}: {e.get('message', '')}"
            for e in self.problem.get("errors") or []
            if isinstance(e, dict)
        ]
        if self.problem.get("request_id"):
            details.append(f"request id: {self.problem['request_id']}")
        super().__init__(message, for_http_status(status), details=details)

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "status": self.status, "problem": self.problem}


def job_exit_code(job: dict[str, Any]) -> int:
    """What ``--follow`` exits with for a job that has ended (see the module docstring)."""
    status = job.get("status")
    code = job.get("exit_code")
    if status == "succeeded":
        return OK
    if isinstance(code, int) and code != 0:
        # A process killed by signal N is 128 + N (the agent reports it so); keep any code in 0-255.
        return 128 - code if code < 0 else code if code <= 255 else code % 256 or JOB_FAILED_WITHOUT_CODE
    if status == "timed_out":
        return JOB_TIMED_OUT
    if status == "cancelled":
        return JOB_CANCELLED
    return JOB_FAILED_WITHOUT_CODE
