"""Each scope against each JobService method over the scheduler's real gRPC server (the scheduler's
harness: real PostgreSQL, the real JobServicer and Authenticator, a fake identity handing out
principals with the scopes under test). The scheduler's code has no scope logic of its own: what
is refused here is refused by shared.grpc for every service."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
from gpufleet.v1 import common_pb2, scheduler_pb2

from shared import api_keys, scopes
from shared.contracts import limits
from shared.grpc import ERROR_FIELD_KEY
from tests.integration.scheduler.conftest import Harness, harness, scheduler_db  # noqa: F401

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]


def _key(h: Harness, org: uuid.UUID, *held: str, role: str = "owner") -> Metadata:
    secret = api_keys.new_key()
    h.identity.keys[secret] = common_pb2.Principal(
        organization_id=str(org),
        user_id=str(uuid.uuid4()),
        role=role,
        api_key_id=str(uuid.uuid4()),
        scopes=list(held),
    )
    return (("authorization", f"Bearer {secret}"),)


def _calls(h: Harness, job_id: str) -> dict[str, Callable[[Metadata], Awaitable[object]]]:
    jobs = h.jobs
    return {
        "JobService/SubmitJob": lambda md: jobs.SubmitJob(
            scheduler_pb2.SubmitJobRequest(command="echo hi", gpu_count=1), metadata=md
        ),
        "JobService/SubmitJobs": lambda md: jobs.SubmitJobs(
            scheduler_pb2.SubmitJobsRequest(
                jobs=[scheduler_pb2.SubmitJobRequest(command="echo hi", gpu_count=1)]
            ),
            metadata=md,
        ),
        "JobService/GetJob": lambda md: jobs.GetJob(scheduler_pb2.GetJobRequest(id=job_id), metadata=md),
        "JobService/WatchJob": lambda md: _first_of(
            jobs.WatchJob(scheduler_pb2.WatchJobRequest(id=job_id), metadata=md)
        ),
        "JobService/ListJobs": lambda md: jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=md),
        "JobService/HoldJob": lambda md: jobs.HoldJob(scheduler_pb2.GetJobRequest(id=job_id), metadata=md),
        "JobService/ReleaseJob": lambda md: jobs.ReleaseJob(
            scheduler_pb2.GetJobRequest(id=job_id), metadata=md
        ),
        "JobService/UpdateJobPriority": lambda md: jobs.UpdateJobPriority(
            scheduler_pb2.UpdateJobPriorityRequest(id=job_id, priority=60), metadata=md
        ),
        "JobService/CancelJob": lambda md: jobs.CancelJob(
            scheduler_pb2.CancelJobRequest(id=job_id, reason="scope test"), metadata=md
        ),
        "JobService/ListAllocations": lambda md: jobs.ListAllocations(
            scheduler_pb2.ListAllocationsRequest(), metadata=md
        ),
    }


async def _first_of(stream: grpc.aio.UnaryStreamCall) -> object:
    """A server stream's first message (its refusal, if it refuses), then the stream is let go."""
    try:
        return await stream.read()
    finally:
        stream.cancel()


async def _outcome(call: Awaitable[object]) -> tuple[str, str, str | None]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        field = dict(exc.trailing_metadata() or ()).get(ERROR_FIELD_KEY)
        return exc.code().name, exc.details() or "", field if isinstance(field, str) else None
    return "OK", "", None


@pytest.mark.parametrize("scope", limits.KEY_SCOPES)
async def test_each_scope_against_each_job_method(harness: Harness, scope: str) -> None:  # noqa: F811
    org = uuid.uuid4()
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="sleep 60", gpu_count=1), metadata=_key(harness, org, "admin")
    )
    holder = _key(harness, org, scope)
    calls = _calls(harness, job.id)
    assert set(calls) == {m for m in scopes.SCOPE_OF if m.startswith("JobService/")}  # all of them
    unserved = []
    for method, call in calls.items():
        code, details, field = await _outcome(call(holder))
        if code == "UNIMPLEMENTED":  # declared in the proto, not served yet: covered once it is
            unserved.append(method)
            continue
        if scopes.allows((scope,), method):
            # Allowed by its scope; the job's state may still refuse (e.g. releasing a job not held).
            assert code != "PERMISSION_DENIED", (scope, method, details)
        else:
            assert (code, field) == ("PERMISSION_DENIED", "scopes"), (scope, method, code)
            assert f"lacks the {scopes.SCOPE_OF[method]} scope" in details
    assert not {
        "JobService/SubmitJob",
        "JobService/SubmitJobs",
        "JobService/GetJob",
        "JobService/ListJobs",
        "JobService/CancelJob",
    } & set(unserved)


async def test_a_jobs_read_key_can_no_longer_submit_or_cancel(harness: Harness) -> None:  # noqa: F811
    org = uuid.uuid4()
    reader = _key(harness, org, "jobs:read")
    code, details, _ = await _outcome(
        harness.jobs.SubmitJob(scheduler_pb2.SubmitJobRequest(command="echo", gpu_count=1), metadata=reader)
    )
    assert code == "PERMISSION_DENIED" and "jobs:write" in details
    listed = await harness.jobs.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=reader)
    assert list(listed.jobs) == []  # nothing was submitted behind the refusal


async def test_scopes_never_widen_a_role(harness: Harness) -> None:  # noqa: F811
    viewer = _key(harness, uuid.uuid4(), "jobs:write", role="viewer")
    code, _, _ = await _outcome(
        harness.jobs.SubmitJob(scheduler_pb2.SubmitJobRequest(command="echo", gpu_count=1), metadata=viewer)
    )
    assert code == "PERMISSION_DENIED"


async def test_a_key_without_scopes_may_do_what_its_role_allows(harness: Harness) -> None:  # noqa: F811
    plain = _key(harness, uuid.uuid4())
    job = await harness.jobs.SubmitJob(
        scheduler_pb2.SubmitJobRequest(command="echo", gpu_count=1), metadata=plain
    )
    assert (await harness.jobs.CancelJob(scheduler_pb2.CancelJobRequest(id=job.id), metadata=plain)).id
