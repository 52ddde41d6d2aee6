"""NodeAgentService (node agents, node credentials): what each node should run, pushed or asked for, and
the agents' job reports, one by one or in batches. It only translates between proto messages and
commands; the handlers decide.

Every call presents the caller's node credential (``authorization: Bearer gpfn_...``), verified through
fleet (:class:`shared.grpc.NodeAuthenticator`, cached at most a second: a revoked credential stops
working within about a second). The node the request names must be the caller's own (another:
PERMISSION_DENIED), and a report about a job not placed on the caller's node is PERMISSION_DENIED and
changes nothing (the handlers look the job up on the caller's node only). An API key or the operator
token is never accepted here (docs/agent-identity.md).

``WatchAssignments`` sends the node's whole list at once and again whenever it changes. A change is
noticed two ways: the :class:`AssignmentFeed` wakes the stream right after this process committed a
change for the node, and the feed's poll (one statement a second for every node watched in this
process) wakes it for what another replica committed. The stream reads its list only then (and, as a
safety net, once every ``resync_seconds``), and sends it only when it differs from the last one sent,
except for a keep-alive: the same list, same revision, after ``keepalive_seconds`` of silence, which
lets the agent tell a quiet stream from a dead one (no read needed). Every ``recheck_seconds`` the
caller's credential is checked again (no database read).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar
from uuid import UUID

import grpc
from gpufleet.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc

from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shared.grpc import NodeAuthenticator, grpc_service, streaming_call
from shared.wire import parse_ts

from ..domain.model import Job
from ..service_layer import commands, handlers
from ..service_layer.assignments import AssignmentFeed, NodeVersion, node_version
from ..service_layer.handlers import Dependencies

log = logging.getLogger("gpufleet.scheduler.agents")

SERVICE_NAME = scheduler_pb2.DESCRIPTOR.services_by_name["NodeAgentService"].full_name
RECHECK_SECONDS = 1.0
KEEPALIVE_SECONDS = 10.0
# A stream reads its list when woken (a change here, or the feed's poll for another replica's); this
# is the safety net besides: at most this long between two reads whatever the signals said.
RESYNC_SECONDS = 60.0
MAX_REPORTS_PER_CALL = 1000
T = TypeVar("T", scheduler_pb2.ReportJobStartedRequest, scheduler_pb2.ReportJobFinishedRequest)
# A job's distributed-training rendezvous port on its master node when the job does not name one:
# spread over a range by job id, so two gangs mastered on one node rarely meet.
MASTER_PORT_BASE, MASTER_PORT_SPAN = 29500, 10000


def assignment_message(job: Job, node_id: UUID | None = None) -> scheduler_pb2.Assignment:
    """The job as the agent of ``node_id`` (default: the job's first node) must run it: the GPUs it
    holds there, and its rank among the job's nodes (a single-node job: rank 0 of a world of one,
    its own master). A gang's members meet at rank 0's address: ``node_names`` lists every member's
    address in rank order (the ``gpufleet.io/address`` label of its node, else the host name its
    agent registered with, as recorded when the gang was placed; a placement recorded before
    addresses were names its node by id)."""
    node = node_id if node_id is not None else job.node_id
    placements = sorted(job.placements, key=lambda p: p.rank)
    mine = next((p for p in placements if p.node_id == node), None)
    allocation = job.allocation
    if mine is not None and len(placements) > 1:
        here = set(mine.gpu_ids)
        allocation = tuple(a for a in job.allocation if a.gpu_id in here)
    names = [p.address or str(p.node_id) for p in placements]
    return scheduler_pb2.Assignment(
        job_id=str(job.id),
        command=job.command,
        gpu_indices=[a.gpu_index for a in allocation],
        gpu_ids=[str(a.gpu_id) for a in allocation],
        organization_id=str(job.organization_id),
        status=job.status.value,
        cancel_requested=job.stop_requested,  # a cancel, or a preemption: the same stop for the agent
        attempt=job.attempt,
        time_limit_seconds=job.time_limit_seconds or 0,
        cpu_cores=job.cpu_cores,
        ram_mb=job.ram_mb,
        rank=mine.rank if mine is not None else 0,
        world_size=max(len(placements), 1),
        master_addr=names[0] if len(names) > 1 else "",
        master_port=MASTER_PORT_BASE + job.id.int % MASTER_PORT_SPAN,
        node_names=names,
        image=job.image or "",
    )


def _digest(assignments: Sequence[scheduler_pb2.Assignment]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in sorted(assignments, key=lambda a: a.job_id):
        h.update(a.SerializeToString(deterministic=True))
        h.update(b"\0")
    return h.digest()


NOT_YOURS = "the job is not placed on this node"


def _started(node_id: str, r: scheduler_pb2.ReportJobStartedRequest) -> commands.ReportJobStarted:
    return commands.ReportJobStarted(
        node_id=node_id,
        job_id=r.job_id,
        started_at=parse_ts(r.started_at, "started_at"),
        attempt=r.attempt,
    )


def _finished(node_id: str, r: scheduler_pb2.ReportJobFinishedRequest) -> commands.ReportJobFinished:
    return commands.ReportJobFinished(
        node_id=node_id,
        job_id=r.job_id,
        exit_code=r.exit_code if r.has_exit_code else None,
        cancelled=r.cancelled,
        error_message=r.error_message or None,
        output_tail=r.output_tail or None,
        finished_at=parse_ts(r.finished_at, "finished_at"),
        timed_out=r.timed_out,
        attempt=r.attempt,
    )


@grpc_service
class NodeAgentServicer(scheduler_pb2_grpc.NodeAgentServiceServicer):
    def __init__(
        self,
        deps: Dependencies,
        nodes: NodeAuthenticator,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.deps = deps
        self._nodes = nodes
        self._recheck, self._keepalive, self._resync = recheck_seconds, keepalive_seconds, resync_seconds

    @property
    def feed(self) -> AssignmentFeed:
        return self.deps.assignments

    async def _assignments(self, node_id: str) -> list[scheduler_pb2.Assignment]:
        return (await self._read(node_id))[0]

    async def _read(self, node_id: str) -> tuple[list[scheduler_pb2.Assignment], NodeVersion]:
        jobs: list[Job] = await handlers.handle(commands.GetAssignments(node_id=node_id), self.deps)
        node = UUID(node_id)
        return [assignment_message(j, node) for j in jobs], node_version(jobs)

    async def _node_versions(self, node_ids: list[UUID]) -> dict[UUID, NodeVersion]:
        async with self.deps.uow(system=True) as uow:
            return await uow.node_versions(node_ids)

    async def GetAssignments(
        self, request: scheduler_pb2.GetAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.GetAssignmentsResponse:
        await self._nodes.own_node(context, request.node_id)
        return scheduler_pb2.GetAssignmentsResponse(assignments=await self._assignments(request.node_id))

    def WatchAssignments(
        self, request: scheduler_pb2.WatchAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.AssignmentsUpdate]:
        # An async generator (what the tracing interceptor streams from), so grpc_service, which
        # wraps coroutines, does not see it: errors are rendered here, the same way.
        return _rendered(context, "WatchAssignments", self._watch(request, context))

    async def _watch(
        self, request: scheduler_pb2.WatchAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.AssignmentsUpdate]:
        node = await self._nodes.own_node(context, request.node_id)
        known = max(request.known_revision, 0)
        sent: bytes | None = None
        revision = 0
        last_write = 0.0
        read = True  # the first round reads; later ones when woken (a change), or to resync
        last_read = 0.0
        update: scheduler_pb2.AssignmentsUpdate | None = None
        with self.feed.watch(node) as woken:
            self.feed.keep_polling(self._node_versions)  # another replica's changes wake us through it
            while True:
                # Every round (at least every recheck_seconds) asks again who the caller is: a credential
                # revoked since the stream opened ends it, UNAUTHENTICATED, within about a second. A
                # fleet that cannot be reached does not end it (what it already trusts keeps flowing),
                # and the check keeps the credential in use, so its reports find it verified ahead.
                with contextlib.suppress(Unavailable):
                    await self._nodes.own_node(context, request.node_id)
                if read or time.monotonic() - last_read >= self._resync:
                    woken.clear()  # before reading: a commit during the read wakes the next round
                    assignments, version = await self._read(request.node_id)
                    last_read = time.monotonic()
                    self.feed.saw(node, version)
                    digest = _digest(assignments)
                    if digest != sent:
                        revision = self.feed.revision(node, digest, max(known, revision))
                        update = scheduler_pb2.AssignmentsUpdate(revision=revision, assignments=assignments)
                        yield update
                        sent, last_write = digest, time.monotonic()
                if update is not None and time.monotonic() - last_write >= self._keepalive:
                    yield update  # the keep-alive: the same list, the same revision, read or not
                    last_write = time.monotonic()
                timeout = min(self._recheck, max(self._keepalive - (time.monotonic() - last_write), 0.0))
                read = False
                with contextlib.suppress(TimeoutError):
                    await _wait(woken, timeout)
                    read = True

    async def ReportJobs(
        self, request: scheduler_pb2.ReportJobsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ReportJobsResponse:
        """Apply the reports in order, in one transaction. ``acknowledged`` names every job whose reports
        in this call the scheduler is done with: applied, already applied, or refused for good (an
        unknown job, a job of another node: logged here, and resending would not change the answer).
        When the database is unavailable the call fails as a whole and the agent sends it again.

        A report about a job that is not placed on the caller's node changes nothing and makes the
        call PERMISSION_DENIED (the batch's other reports, all about the caller's own jobs, are
        applied: each report is decided on its own). An agent then sends the batch one report per
        call and drops those refused (a report from before a requeue moved the job elsewhere)."""
        await self._nodes.own_node(context, request.node_id)
        if len(request.reports) > MAX_REPORTS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_REPORTS_PER_CALL} reports per call", field="reports")
        cmds = tuple(_report_command(request.node_id, report) for report in request.reports)
        answers = await handlers.handle(commands.ReportJobs(cmds), self.deps)
        foreign = None
        for report, refused in zip(request.reports, answers, strict=True):
            if isinstance(refused, NotFound) and foreign is None:
                foreign = _job_of(report)
            if refused is not None:
                log.warning(
                    "refused a job report",
                    extra={
                        "node_id": request.node_id,
                        "job_id": _job_of(report),
                        "report": report.WhichOneof("report"),
                        "reason": refused.message,
                    },
                )
        if foreign is not None:
            raise PermissionDenied(f"{NOT_YOURS}: {foreign[:64]}", field="reports")
        return scheduler_pb2.ReportJobsResponse(
            acknowledged=list(dict.fromkeys(_job_of(r) for r in request.reports))
        )

    async def ReportJobStarted(
        self, request: scheduler_pb2.ReportJobStartedRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        await self._nodes.own_node(context, request.node_id)
        await _own_job(handlers.handle(_started(request.node_id, request), self.deps))
        return common_pb2.Empty()

    async def ReportJobFinished(
        self, request: scheduler_pb2.ReportJobFinishedRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        await self._nodes.own_node(context, request.node_id)
        await _own_job(handlers.handle(_finished(request.node_id, request), self.deps))
        return common_pb2.Empty()


async def _own_job(report: Awaitable[None]) -> None:
    """A report the handler could not find on the caller's node is about a job that is not the
    caller's: PERMISSION_DENIED (the same answer whether the job exists elsewhere or not at all)."""
    try:
        await report
    except NotFound as exc:
        raise PermissionDenied(NOT_YOURS, field="job_id") from exc


def _job_of(report: scheduler_pb2.JobReport) -> str:
    kind = report.WhichOneof("report")
    return report.job_id or (getattr(report, kind).job_id if kind else "")


def _report_command(
    node_id: str, report: scheduler_pb2.JobReport
) -> commands.ReportJobStarted | commands.ReportJobFinished:
    kind = report.WhichOneof("report")
    if kind == "started":
        return _started(node_id, _with_job(report.started, report.job_id))
    if kind == "finished":
        return _finished(node_id, _with_job(report.finished, report.job_id))
    raise InvalidArgument("a report must be started or finished", field="reports")


def _with_job(inner: T, job_id: str) -> T:
    """The inner report, naming the outer report's job when it names none itself."""
    if inner.job_id or not job_id:
        return inner
    named = type(inner)()
    named.CopyFrom(inner)
    named.job_id = job_id
    return named


async def _rendered(
    context: grpc.aio.ServicerContext, method: str, updates: AsyncIterator[scheduler_pb2.AssignmentsUpdate]
) -> AsyncIterator[scheduler_pb2.AssignmentsUpdate]:
    async with streaming_call(context, "NodeAgentServicer", method):
        async for update in updates:
            yield update


async def _wait(event: asyncio.Event, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        await event.wait()
