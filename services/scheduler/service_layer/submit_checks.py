"""What a single submit (handlers.submit_job) and a batch (batch_submit.submit_jobs) check alike: a
request's spec, the shape admission asks about and how its refusal names a field, and whether a job an
idempotency key names is the one this request created."""

from __future__ import annotations

from shared.errors import InvalidArgument

from ..domain.engine import Shape
from ..domain.model import Job
from ..domain.spec import JobSpec, TimeLimits, check_same_request, job_spec, request_fingerprint
from . import commands


def request_spec(req: commands.JobRequest, limits: TimeLimits, idempotency_key: str | None) -> JobSpec:
    """The validated spec of a request's fields (its project is decided afterwards)."""
    return job_spec(
        command=req.command,
        gpu_count=req.gpu_count,
        gpu_memory_mb=req.gpu_memory_mb,
        gpu_type=req.gpu_type,
        priority=req.priority,
        webhook_url=req.webhook_url,
        name=req.name,
        idempotency_key=idempotency_key,
        nodes=req.nodes,
        cpu_cores=req.cpu_cores,
        ram_mb=req.ram_mb,
        time_limit_seconds=req.time_limit_seconds,
        hold=req.hold,
        no_requeue=req.no_requeue,
        limits=limits,
        image=req.image,
    )


def stored_spec(job: Job) -> JobSpec:
    """The normalized request a stored job was created from (its request fields never change)."""
    return JobSpec(
        command=job.command,
        gpu_count=job.gpu_count,
        gpu_memory_mb=job.gpu_memory_mb,
        gpu_type=job.gpu_type,
        priority=job.priority,
        webhook_url=job.webhook_url,
        name=job.name,
        idempotency_key=job.idempotency_key,
        nodes=job.nodes,
        cpu_cores=job.cpu_cores,
        ram_mb=job.ram_mb,
        time_limit_seconds=job.time_limit_seconds,
        no_requeue=job.no_requeue,
        # ``hold`` is not kept as asked (a release clears it); a held retry still matches its job
        hold=False,
        project_id=job.project_id,
        image=job.image,
    )


def shape_of_spec(spec: JobSpec) -> Shape:
    return Shape(
        spec.nodes,
        spec.gpu_count,
        spec.gpu_memory_mb,
        spec.gpu_type,
        spec.cpu_cores,
        spec.ram_mb,
        spec.image is not None,
    )


def field_of(why: str) -> str:
    """The request field an admission answer is about (the engine checks type, memory, count, CPU
    and RAM, then the gang, in that order, and says which; a job naming an image, first, whether any
    node has a container runtime)."""
    if "names an image" in why:
        return "image"
    if "gang" in why:
        return "nodes"
    if "CPU" in why or "RAM" in why:
        return "cpu_cores" if "CPU" in why else "ram_mb"
    if "of memory" in why:
        return "gpu_memory_mb"
    if "GPU" in why and "has a" in why:
        return "gpu_type"
    return "gpu_count"


def never_fits(why: str) -> InvalidArgument:
    """The refusal of a job no node of this fleet could ever run, naming the field it is about."""
    return InvalidArgument(f"no node of this fleet could ever run this job: {why}", field=field_of(why))


def same_job(spec: JobSpec, found: tuple[Job, str | None]) -> Job:
    """The job an idempotency key names, if this request is the one that created it."""
    job, fingerprint = found
    # Jobs stored before fingerprints were kept: their own request fields say what was asked.
    check_same_request(spec, fingerprint or request_fingerprint(stored_spec(job)))
    return job
