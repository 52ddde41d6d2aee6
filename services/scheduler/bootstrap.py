"""Composition root: wires the adapters into the handlers. Tests pass fakes instead.

:func:`bootstrap` builds the handlers' :class:`Dependencies` (what tests need); :func:`bootstrap_app`
adds what the process runs (gRPC servicers, the fleet consumer, the scheduling loop, metrics)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field, replace

from faststream.kafka import KafkaBroker
from gpufleet.v1 import policy_pb2_grpc, scheduler_pb2_grpc

from shared.db import Database
from shared.grpc import Authenticator, NodeAuthenticator

from .adapters import metrics
from .adapters.allocations_read import SqlAllocationReader, SqlFleetAllocationReader
from .adapters.fleet_catalog import FleetGpuTypeCatalog
from .adapters.identity_projects import IdentityProjectDirectory
from .adapters.limits_repository import SqlLimitsRepository, SqlQueuedJobs
from .adapters.policy_repository import SqlPolicyRepository
from .adapters.repository import SqlUnitOfWorkFactory
from .config import SchedulerSettings
from .domain.engine import Policy, Quota, UserCap
from .domain.spec import TimeLimits
from .entrypoints import consumers
from .entrypoints.agent_api import NodeAgentServicer
from .entrypoints.allocations import JobServicerWithAllocations
from .entrypoints.grpc_server import SERVICE_NAMES
from .entrypoints.policy_api import SERVICE_NAME as POLICY_SERVICE
from .entrypoints.policy_api import PolicyServicer
from .service_layer.assignments import JobFeed
from .service_layer.capacity import FleetCapacity
from .service_layer.handlers import Dependencies
from .service_layer.limits import LimitsDependencies, LimitsStore, SubmitLimiter
from .service_layer.options import SchedulingOptions
from .service_layer.policy import PolicyAwareCapacity, PolicyDependencies, PolicyStore
from .service_layer.scheduling import CycleReport, Scheduler, run_scheduling_loop
from .service_layer.submits import SubmitWriter
from .service_layer.unit_of_work import AdmissionCheck, GpuTypeCatalog, UnitOfWorkFactory
from .service_layer.wakeup import Wakeup


def scheduling_options(settings: SchedulerSettings) -> SchedulingOptions:
    """The operator's policy from settings (what seeds the stored policy: service_layer/policy.py)."""
    policy = Policy(
        org_shares=dict(settings.scheduler_fair_shares),
        half_life_s=settings.scheduler_half_life_seconds,
        gpu_type_weights=dict(settings.scheduler_gpu_type_weights),
        quotas={
            (org, gpu_type): Quota(q.nominal, q.borrowing_limit, q.lending_limit)
            for org, per_type in settings.scheduler_quotas.items()
            for gpu_type, q in per_type.items()
        },
        dedicated_lending_limit=settings.scheduler_dedicated_lending_limit,
        user_caps={
            org: UserCap(c.max_running_jobs, c.max_gpus) for org, c in settings.scheduler_user_caps.items()
        },
        # Refused at submit instead; a job that stopped fitting after the fleet shrank waits and says so.
        reject_never_fitting=False,
    )
    return SchedulingOptions(
        policy=policy,
        limits=TimeLimits(
            settings.scheduler_default_time_limit_seconds, settings.scheduler_max_time_limit_seconds
        ),
        max_attempts=settings.scheduler_max_attempts,
        lease_ttl_s=settings.scheduler_lease_ttl_seconds,
        lease_renew_s=min(settings.scheduler_lease_renew_seconds, settings.scheduler_lease_ttl_seconds / 2),
    )


def lease_holder() -> str:
    """Unique per process: a restarted scheduler is a new tenure that rebuilds its state."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def bootstrap(
    settings: SchedulerSettings | None = None,
    *,
    db: Database | None = None,
    uow: UnitOfWorkFactory | None = None,
    catalog: GpuTypeCatalog | None = None,
    wakeup: Wakeup | None = None,
    options: SchedulingOptions | None = None,
    capacity: AdmissionCheck | None = None,
    jobs: JobFeed | None = None,
) -> Dependencies:
    """The scheduler's dependencies. ``jobs``: the feed ``uow`` tells of saved jobs (made here, and
    wired to the factory, when ``uow`` is made here)."""
    jobs = jobs or JobFeed()
    if uow is None:
        if db is None:
            raise ValueError("bootstrap needs a database or a unit-of-work factory")
        uow = SqlUnitOfWorkFactory(db, on_commit=jobs.changed)
    if catalog is None:
        if settings is None:
            raise ValueError("bootstrap needs settings or a GPU type catalog")
        catalog = FleetGpuTypeCatalog(
            settings.fleet_grpc_target, ttl=settings.scheduler_gpu_type_cache_seconds
        )
    if options is None:
        options = scheduling_options(settings) if settings is not None else SchedulingOptions()
    if capacity is None:
        capacity = FleetCapacity(uow, options.policy)
    return Dependencies(
        uow=uow,
        catalog=catalog,
        wakeup=wakeup or Wakeup(),
        options=options,
        capacity=capacity,
        submits=SubmitWriter(uow),
        jobs=jobs,
    )


@dataclass(frozen=True)
class SchedulerApp:
    settings: SchedulerSettings
    db: Database
    deps: Dependencies
    auth: Authenticator
    # The stored policy (service_layer/policy.py); None: the settings' policy as it is.
    policies: PolicyStore | None = None
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheduler", Scheduler(self.deps, lease_holder(), policies=self.policies))

    @property
    def grpc_services(self) -> list:
        """Tenant- and operator-facing: JobService and PolicyService (GPUFLEET_SCHEDULER_GRPC_LISTEN)."""
        job_api, _ = SERVICE_NAMES
        return [
            (
                scheduler_pb2_grpc.add_JobServiceServicer_to_server,
                # JobServicer plus ListAllocations (entrypoints/allocations.py).
                JobServicerWithAllocations(self.deps, self.auth, SqlAllocationReader(self.db)),
                job_api,
            ),
            *self.policy_services,
        ]

    @property
    def agent_grpc_services(self) -> list:
        """The node agents' NodeAgentService (GPUFLEET_SCHEDULER_AGENT_GRPC_LISTEN when set). Their
        credentials are verified by fleet's NodeRegistryService, on fleet's agent listener when it has one."""
        _, agent_api = SERVICE_NAMES
        fleet = self.settings.fleet_agent_grpc_target or self.settings.fleet_grpc_target
        return [
            (
                scheduler_pb2_grpc.add_NodeAgentServiceServicer_to_server,
                NodeAgentServicer(self.deps, NodeAuthenticator(fleet)),
                agent_api,
            )
        ]

    @property
    def policy_services(self) -> list:
        if self.policies is None:
            return []
        limits = self.deps.limits
        deps = PolicyDependencies(
            self.policies.repo,
            self.policies,
            self.deps.wakeup,
            limits=LimitsDependencies(limits.store.repo, limits.store) if limits is not None else None,
        )
        return [
            (
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                PolicyServicer(deps, self.auth, SqlFleetAllocationReader(self.db)),
                POLICY_SERVICE,
            )
        ]

    def register_consumers(self, broker: KafkaBroker) -> None:
        consumers.register(broker, self.deps)

    async def run_scheduling_loop(self, stop: asyncio.Event) -> None:
        def observe(report: CycleReport) -> None:
            metrics.CYCLE_SECONDS.observe(report.seconds)
            metrics.PLACEMENTS.inc(len(report.placed))
            metrics.PENDING_WRITES.inc(report.pending_written)

        await run_scheduling_loop(
            stop,
            self.scheduler,
            self.settings.scheduler_tick_seconds,
            observe=observe,
            on_failure=metrics.CYCLE_FAILURES.inc,
        )

    async def measure_jobs(self) -> None:
        await metrics.measure_jobs(self.db)

    async def close(self) -> None:
        close_catalog = getattr(self.deps.catalog, "close", None)
        if close_catalog is not None:
            await close_catalog()
        close_projects = getattr(self.deps.projects, "close", None)
        if close_projects is not None:
            await close_projects()
        # The caches kept fresh in the background (service_layer/freshness.py).
        if self.policies is not None:
            await self.policies.close()
        if self.deps.limits is not None:
            await self.deps.limits.store.close()
        close_capacity = getattr(self.deps.capacity, "close", None)
        if close_capacity is not None:
            await close_capacity()


def bootstrap_app(settings: SchedulerSettings, *, db: Database, auth: Authenticator) -> SchedulerApp:
    # The policy is stored (seeded from settings once) and set through PolicyService; the loop and
    # admission at submit both run under the store's current one.
    jobs = JobFeed()
    uow = SqlUnitOfWorkFactory(db, on_commit=jobs.changed)
    policies = PolicyStore(SqlPolicyRepository(db), scheduling_options(settings).policy)
    deps = bootstrap(settings, db=db, uow=uow, capacity=PolicyAwareCapacity(uow, policies), jobs=jobs)
    # Abuse limits at submit (docs/limits.md), from the same policy tables.
    deps = replace(deps, limits=SubmitLimiter(LimitsStore(SqlLimitsRepository(db)), SqlQueuedJobs(db)))
    # identity's word on the projects submits name (docs/projects.md, "Scheduler").
    deps = replace(deps, projects=IdentityProjectDirectory(settings.identity_grpc_target))
    return SchedulerApp(settings=settings, db=db, deps=deps, auth=auth, policies=policies)
