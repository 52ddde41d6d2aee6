"""/v1/jobs (scheduler)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query, Response, status
from gpufleet.v1 import scheduler_pb2
from pydantic import BaseModel, Field

from services.gateway.entrypoints import sse, translate
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep, resource_id
from services.gateway.entrypoints.requests import JobBatchCreate, JobCancel, JobCreate, JobPriorityUpdate
from services.gateway.entrypoints.responses import JobBatchOut, JobListOut, JobOut
from services.gateway.entrypoints.routes import Cursor, PageSize, problem_responses
from shared.contracts import limits
from shared.contracts.jobs import JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"])


_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The job, queued",
        "headers": {"Location": {"description": "The new job's URL", "schema": {"type": "string"}}},
    }
}


# Google AIP-233's batch create: a custom method after a colon (Starlette routes it as a literal path).
BATCH_CREATE = "/v1/jobs:batchCreate"


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={**_CREATED, **problem_responses(400, 403, 404, 409, 422, 429)},
    summary="Submit a job (422 when no node of this fleet could ever run it)",
)
async def submit_job(
    body: JobCreate,
    response: Response,
    caller: CallerDep,
    down: DownstreamDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=limits.MAX_IDEMPOTENCY_KEY,
            description="Retrying the same request with the same key returns the job first created "
            "with it; the same key with a different request is refused (409 idempotency-key-reused).",
        ),
    ] = None,
) -> JobOut:
    job = await down.jobs.SubmitJob(_submit_request(body, idempotency_key), **caller.call)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return translate.job(job)


def _submit_request(body: JobCreate, idempotency_key: str | None = None) -> scheduler_pb2.SubmitJobRequest:
    return scheduler_pb2.SubmitJobRequest(
        command=body.command,
        gpu_count=body.gpu_count,
        gpu_memory_mb=body.gpu_memory_mb,
        gpu_type=body.gpu_type or "",
        priority=body.priority,
        webhook_url=body.webhook_url or "",
        name=body.name or "",
        idempotency_key=idempotency_key or "",
        nodes=body.nodes,
        cpu_cores=body.cpu_cores,
        ram_mb=body.ram_mb,
        time_limit_seconds=body.time_limit_seconds or 0,
        hold=body.hold,
        no_requeue=body.no_requeue,
        project_id=str(body.project_id) if body.project_id else "",
        image=body.image or "",
    )


@router.post(
    BATCH_CREATE.removeprefix("/v1"),
    status_code=status.HTTP_201_CREATED,
    response_model=JobBatchOut,
    responses={
        201: {"description": "The jobs, queued, in request order"},
        **problem_responses(400, 403, 404, 409, 413, 422, 429),
    },
    summary=f"Submit 1 to {limits.MAX_BATCH_SUBMIT} jobs at once, all or nothing",
    description="Every job is checked as `POST /v1/jobs` checks it before any is created; if one is "
    "refused, none is, and the problem names it (`errors[].field` such as `jobs[3].gpu_count`, `detail` "
    "starting `jobs[3]: `) with the status a single submit of it would get. The organization's submit "
    "rate and queued-jobs cap count each job: a batch that does not fit is refused whole (429). "
    f"The body may be up to {limits.MAX_BATCH_REQUEST_BODY_BYTES} bytes.",
)
async def submit_jobs(
    body: JobBatchCreate,
    caller: CallerDep,
    down: DownstreamDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=limits.MAX_BATCH_IDEMPOTENCY_KEY,
            description="For the whole batch: retrying the same jobs with the same key returns the jobs "
            "first created with it; the same key with other jobs is refused (409 idempotency-key-reused). "
            f"At most {limits.MAX_BATCH_IDEMPOTENCY_KEY} characters: each job is kept under the key, a "
            "separator and its index.",
        ),
    ] = None,
) -> JobBatchOut:
    reply = await down.jobs.SubmitJobs(
        scheduler_pb2.SubmitJobsRequest(
            jobs=[_submit_request(job) for job in body.jobs], idempotency_key=idempotency_key or ""
        ),
        **caller.call,
    )
    return translate.job_batch(reply)


@router.get(
    "/jobs",
    response_model=JobListOut,
    responses=problem_responses(422),
    summary="The organization's jobs, newest first",
)
async def list_jobs(
    caller: CallerDep,
    down: DownstreamDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    limit: PageSize = None,
    cursor: Cursor = None,
    project_id: Annotated[
        UUID | None,
        Query(description="Only this project's jobs (a project-bound key lists only its own project's)."),
    ] = None,
) -> JobListOut:
    reply = await down.jobs.ListJobs(
        scheduler_pb2.ListJobsRequest(
            status=status or "",
            limit=limit or 0,
            cursor=cursor or "",
            project_id=str(project_id) if project_id else "",
        ),
        **caller.call,
    )
    return translate.job_list(reply)


# While no job message came for this long, the watch sends a `: heartbeat` comment (WatchJob itself
# sends no keep-alives, and proxies close idle connections).
WATCH_HEARTBEAT_SECONDS = 15.0


class JobFrame(BaseModel):
    """One frame of the watch (``event:`` and ``data:`` lines, then a blank line); between frames,
    ``: heartbeat`` comment lines keep the connection open."""

    event: Literal["job"] = Field(description="Always `job`.")
    data: JobOut = Field(
        description="The job as one line of JSON: exactly the body `GET /v1/jobs/{job_id}` returns for it."
    )


def job_frame(job: scheduler_pb2.Job) -> bytes:
    """A job as one SSE frame, rendered as ``GET /v1/jobs/{job_id}`` renders its body."""
    return sse.sse_event(None, "job", translate.job(job).model_dump_json(by_alias=True))


# Before GET /v1/jobs/{job_id}: that route's parameter would otherwise take `abc:watch` as the id.
@router.get(
    "/jobs/{job_id}:watch",
    response_class=sse.EventStreamResponse,
    responses={
        200: {
            "description": "Server-Sent Events: the job at once, then again each time it changes (status, "
            "pending reason, queue position, hold, priority, cancel request), each as an `event: job` "
            "frame whose `data` is the body `GET /v1/jobs/{job_id}` returns; `: heartbeat` comments "
            f"after {WATCH_HEARTBEAT_SECONDS:g} s without one. The frame with the job's final status is "
            "the last, then the response ends. No `id:`: a client that reconnects gets the current "
            "state first. The stream also ends when the API key stops authenticating.",
            "model": JobFrame,
        },
        **problem_responses(404),
    },
    summary="Follow one job: its state now and at each change, until it ends (SSE)",
)
async def watch_job(job_id: str, caller: CallerDep, down: DownstreamDep) -> sse.EventStreamResponse:
    request = scheduler_pb2.WatchJobRequest(id=resource_id(job_id))
    # No deadline: the stream lives until the job ends or the client goes (the default call timeout
    # would end it).
    call = down.jobs.WatchJob(request, metadata=caller.metadata)
    first = await sse.open_stream(call, "the job watch closed")
    try:
        head = job_frame(first)  # a reply outside the contract: a 502 problem, before the stream starts
    except BaseException:
        call.cancel()
        raise
    body = sse.relay(
        call,
        head,
        job_frame,
        down,
        sse.caller_key(caller.metadata),
        heartbeat_seconds=WATCH_HEARTBEAT_SECONDS,
        name="job watch",
    )
    return sse.EventStreamResponse(body, headers=sse.STREAM_HEADERS)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=problem_responses(404),
    summary="One job, with its status history",
)
async def get_job(job_id: str, caller: CallerDep, down: DownstreamDep) -> JobOut:
    job = await down.jobs.GetJob(scheduler_pb2.GetJobRequest(id=resource_id(job_id)), **caller.call)
    return translate.job(job)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=problem_responses(400, 404, 409, 422),
    summary="Cancel a job (409 once it has finished)",
)
async def cancel_job(
    job_id: str,
    caller: CallerDep,
    down: DownstreamDep,
    body: Annotated[JobCancel | None, Body()] = None,
) -> JobOut:
    job = await down.jobs.CancelJob(
        scheduler_pb2.CancelJobRequest(id=resource_id(job_id), reason=(body.reason if body else None) or ""),
        **caller.call,
    )
    return translate.job(job)


# Hold, release and re-prioritise apply to queued jobs only (409 otherwise); another organization's job
# is not found, exactly like a missing one.


@router.post(
    "/jobs/{job_id}/hold",
    response_model=JobOut,
    responses=problem_responses(400, 404, 409),
    summary="Keep a queued job from being scheduled until released",
)
async def hold_job(job_id: str, caller: CallerDep, down: DownstreamDep) -> JobOut:
    job = await down.jobs.HoldJob(scheduler_pb2.GetJobRequest(id=resource_id(job_id)), **caller.call)
    return translate.job(job)


@router.post(
    "/jobs/{job_id}/release",
    response_model=JobOut,
    responses=problem_responses(400, 404, 409),
    summary="Let a held job be scheduled again",
)
async def release_job(job_id: str, caller: CallerDep, down: DownstreamDep) -> JobOut:
    job = await down.jobs.ReleaseJob(scheduler_pb2.GetJobRequest(id=resource_id(job_id)), **caller.call)
    return translate.job(job)


@router.patch(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=problem_responses(400, 404, 409, 422),
    summary="Change a queued job's priority (orders it among its own organization's jobs only)",
)
async def update_job(job_id: str, body: JobPriorityUpdate, caller: CallerDep, down: DownstreamDep) -> JobOut:
    job = await down.jobs.UpdateJobPriority(
        scheduler_pb2.UpdateJobPriorityRequest(id=resource_id(job_id), priority=body.priority),
        **caller.call,
    )
    return translate.job(job)
