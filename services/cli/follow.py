"""Following a job: its state changes from the event stream and its output, until it ends.

State changes come from ``GET /v1/events?job_id=…`` (resumed with Last-Event-ID when the connection
drops); the job is read once each time the stream (re)opens, so a change made before that is not
missed, and again every ``POLL_SECONDS`` as a safety net (and as the only source against a gateway
without the stream). Output comes from ``GET /v1/jobs/{id}/logs?follow=true``, resumed at the byte
offset reached; against a gateway without it, the job's ``output_tail`` is printed when it ends.
The final answer is always the job as ``GET /v1/jobs/{id}`` returns it once it has ended.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable
from typing import Any

import httpx

from services.cli import exits, sse
from services.cli.client import Api
from services.cli.render import Output

TERMINAL = sse.TERMINAL
# How far along an attempt a status is: a snapshot behind what was already said is a replay (the
# stream starts at the job's first event, the read that opens it may be newer) and is not said again.
_STAGE = {"queued": 0, "scheduled": 1, "running": 2, **{status: 3 for status in TERMINAL}}
POLL_SECONDS = 5.0
# After the job ended, how long its output may take to be complete before we stop waiting.
OUTPUT_GRACE_SECONDS = 30.0
MAX_OUTPUT_RETRIES = 8
OUTPUT_RETRY_DELAY = 0.5  # doubled per failure in a row, at most 10 s


def route_missing(exc: exits.CliError) -> bool:
    """A 404/405 from the gateway's router (no such endpoint), not from a lookup of the job."""
    if not isinstance(exc, exits.ApiError) or exc.status not in (404, 405):
        return False
    return str(exc.problem.get("detail", "")).startswith(("nothing is at", "GET is not allowed"))


def describe(job: dict[str, Any]) -> str:
    status = job.get("status")
    parts = [f"job {job.get('id')}: {status}"]
    if status == "queued":
        reason = job.get("pending_reason") or {}
        if reason:
            parts.append(f"waiting: {reason.get('code')} ({reason.get('message')})")
        if job.get("queue_position"):
            parts.append(f"position {job['queue_position']}")
        if job.get("estimated_start"):
            parts.append(f"estimated start {job['estimated_start']}")
    elif status in ("scheduled", "running") and job.get("node_id"):
        parts.append(f"on node {job['node_id']}")
    elif status in TERMINAL:
        if job.get("exit_code") is not None:
            parts.append(f"exit code {job['exit_code']}")
        if job.get("error_message"):
            parts.append(str(job["error_message"]))
    return ", ".join(parts)


def _snapshot_of(event: sse.Event) -> dict[str, Any] | None:
    """The job after the change, from a job event (``data.job``), in the REST field names."""
    job = event.data.get("job")
    if not isinstance(job, dict):
        return None
    return {**job, "id": job.get("job_id", job.get("id"))}


class Follower:
    def __init__(self, api: Api, job_id: str, out: Output, *, emit: Callable[[dict[str, Any]], None]) -> None:
        self.api = api
        self.job_id = job_id
        self.out = out
        self.emit = emit  # --json: one JSON Lines record per happening
        self._said: tuple[Any, ...] | None = None
        self._progress: tuple[int, int] = (0, -1)  # (attempt, stage) of the newest state said
        self.streamed_output = False
        self.spinner: Any = None  # render.Output.progress's, while the job waits

    def report(self, job: dict[str, Any]) -> None:
        stage = _STAGE.get(str(job.get("status")))
        progress = (int(job.get("attempt") or 1), stage) if stage is not None else self._progress
        if progress < self._progress:
            return  # older than what was already said (a replayed event)
        key = (job.get("status"), (job.get("pending_reason") or {}).get("code"), job.get("queue_position"))
        if key == self._said:
            return
        self._progress = progress
        self._said = key
        if self.spinner is not None:
            if job.get("status") in ("scheduled", "queued"):
                self.spinner.update(describe(job))
            else:
                self.spinner.stop()
        if self.out.as_json:
            self.emit({"kind": "status", "job": job})
        else:
            style = {"succeeded": "green", "failed": "red", "timed_out": "red", "cancelled": "yellow"}
            self.out.info(describe(job), style=style.get(str(job.get("status")), "cyan"))

    async def _read(self) -> dict[str, Any]:
        job: dict[str, Any] = await self.api.get(f"/jobs/{self.job_id}")
        self.report(job)
        return job

    async def _watch_events(self) -> dict[str, Any]:
        try:
            async for item in sse.stream(self.api, job_id=self.job_id):
                if isinstance(item, sse.Opened):
                    job = await self._read()
                elif item.type.startswith("gpufleet.job."):
                    snapshot = _snapshot_of(item)
                    if snapshot is None or snapshot.get("id") != self.job_id:
                        continue
                    if self.out.as_json:
                        self.emit({"kind": "event", **item.as_json()})
                    job = snapshot
                    self.report(job)
                else:
                    continue
                if job.get("status") in TERMINAL:
                    return job
        except exits.CliError as exc:
            if not route_missing(exc):
                raise
            self.out.warn("this gateway has no event stream (GET /v1/events); polling the job instead")
        return await self._poll(0.0)

    async def _watch_job(self) -> dict[str, Any]:
        """The job's own watch (``GET /v1/jobs/{id}:watch``): each state as the scheduler commits it,
        sooner than its events come through the event stream. Best effort: a gateway without it, or a
        watch that cannot be resumed, leaves the events and the poll to tell the end."""
        try:
            async for job in sse.watch_job(self.api, self.job_id):
                self.report(job)
                if job.get("status") in TERMINAL:
                    return job
        except exits.CliError:
            pass
        await asyncio.Event().wait()  # never: the other watchers decide
        raise AssertionError("unreachable")

    async def _poll(self, first_delay: float = POLL_SECONDS) -> dict[str, Any]:
        await asyncio.sleep(first_delay)
        while True:
            job = await self._read()
            if job.get("status") in TERMINAL:
                return job
            await asyncio.sleep(POLL_SECONDS)

    async def _output(self) -> None:
        def write(text: str) -> None:
            if self.spinner is not None:
                self.spinner.stop()
            self.streamed_output = True
            if self.out.as_json:
                self.emit({"kind": "output", "data": text})
            else:
                self.out.raw(text)

        try:
            await follow_output(self.api, self.job_id, write)
        except exits.CliError as exc:
            if not route_missing(exc):
                raise
            self.streamed_output = False

    async def run(self) -> dict[str, Any]:
        """Follow until the job ended and its output was written; returns the job as it ended."""
        output = asyncio.create_task(self._output())
        watchers = [
            asyncio.create_task(self._watch_job()),
            asyncio.create_task(self._watch_events()),
            asyncio.create_task(self._poll()),
        ]
        try:
            done, _ = await asyncio.wait([*watchers, output], return_when=asyncio.FIRST_COMPLETED)
            while not any(w in done for w in watchers):
                # The output ended first (complete, or no such endpoint): keep watching the state.
                (output_done,) = [t for t in done if t is output]
                output_done.result()
                done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            next(w for w in watchers if w in done).result()
            try:
                await asyncio.wait_for(asyncio.shield(output), OUTPUT_GRACE_SECONDS)
            except TimeoutError:
                self.out.warn(
                    "the job ended but its output is not complete yet; `gpufleet logs` shows it later"
                )
            else:
                output.result()
        finally:
            for task in (*watchers, output):
                task.cancel()
            await asyncio.gather(*watchers, output, return_exceptions=True)
        final: dict[str, Any] = await self.api.get(f"/jobs/{self.job_id}")
        tail = final.get("output_tail")
        if not self.streamed_output and tail:
            # No full output came (a gateway without it, or none stored): the job's last part then.
            if self.out.as_json:
                self.emit({"kind": "output", "data": tail, "source": "output_tail"})
            else:
                self.out.raw(tail if tail.endswith("\n") else tail + "\n")
        self.report(final)
        return final


async def follow_output(
    api: Api, job_id: str, write: Callable[[str], None], *, offset: int = 0, follow: bool = True
) -> dict[str, Any]:
    """Write the job's output from ``offset`` as it arrives; returns what the last response said."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    failures = 0
    while True:
        try:
            async with api.stream(
                f"/jobs/{job_id}/logs", params={"offset": offset, "follow": "true" if follow else None}
            ) as response:
                info = _output_headers(response)
                async for chunk in response.aiter_bytes():
                    offset += len(chunk)
                    text = decoder.decode(chunk)
                    if text:
                        write(text)
                    failures = 0
            tail = decoder.decode(b"", final=True)
            if tail:
                write(tail)
            return {**info, "offset": offset}
        except httpx.TransportError as exc:
            failures += 1
            if failures > MAX_OUTPUT_RETRIES:
                raise exits.CliError(f"the job's output stream was lost: {exc!r}", exits.TEMPORARY) from exc
            await asyncio.sleep(min(OUTPUT_RETRY_DELAY * 2 ** (failures - 1), 10.0))


def _output_headers(response: httpx.Response) -> dict[str, Any]:
    def flag(name: str) -> bool | None:
        value = response.headers.get(name)
        return None if value is None else value.strip().lower() == "true"

    size = response.headers.get("GpuFleet-Output-Size")
    return {
        "complete": flag("GpuFleet-Output-Complete"),
        "truncated": flag("GpuFleet-Output-Truncated"),
        "size": int(size) if size and size.isdigit() else None,
    }
