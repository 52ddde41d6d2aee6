"""Composition root: settings -> adapters -> the control loop. Tests build the same pieces with fakes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from shared.contracts.fleet import CONTAINER_RUNTIME_LABEL
from shared.record_signing import RecordSigner
from shared.runtime import Fatal

from . import AGENT_VERSION
from .adapters import host
from .adapters.credentials import CREDENTIAL_FILE, AgentCredentials, CredentialStore
from .adapters.grpc_clients import FleetClient, SchedulerClient
from .adapters.metrics_publisher import KafkaMetricsPublisher
from .adapters.nvml import NvmlBackend
from .adapters.output_capture import KafkaOutputPublisher, output_source
from .adapters.processes import ProcessRunner, SandboxSettings
from .adapters.report_store import JsonReportStore
from .adapters.sandbox import make_undumpable
from .adapters.simulated import SimulatedBackend
from .config import AgentSettings, GpuBackendSettings
from .service_layer.agent import AgentConfig, NodeAgent
from .service_layer.output_shipper import OutputShipper
from .service_layer.ports import GpuBackend, GpuBackendError, Unreachable
from .service_layer.report_queue import ReportQueue

REPORTS_FILE = "pending_reports.json"
log = logging.getLogger("gpufleet.agent")


def make_backend(settings: GpuBackendSettings) -> GpuBackend:
    if settings.agent_gpu_backend == "nvml":
        return NvmlBackend()
    return SimulatedBackend(
        settings.agent_sim_gpu_count,
        settings.agent_sim_gpu_model,
        settings.agent_sim_gpu_memory_mb,
        settings.agent_hostname,
    )


@dataclass
class AgentApp:
    agent: NodeAgent
    fleet: FleetClient
    scheduler: SchedulerClient
    publisher: KafkaMetricsPublisher
    backend: GpuBackend
    credentials: AgentCredentials | None = None
    rotate_every: float = 0.0  # seconds between credential rotations; 0: never

    async def run(self, stop: asyncio.Event) -> None:
        if self.credentials is not None and not self.credentials.has_identity:
            raise Fatal(
                "agent cannot start: no node credential in the state folder and no "
                "GPUFLEET_AGENT_JOIN_TOKEN (an operator creates one: POST /v1/admin/join-tokens)"
            )
        try:
            await self.agent.run(stop)
        except GpuBackendError as exc:
            raise Fatal(f"agent cannot start: {exc}") from exc

    async def rotate_credentials(self, stop: asyncio.Event) -> None:
        """Replace the node credential every ``rotate_every`` seconds (once it has one); a failed
        rotation is retried a minute later, the current credential still working."""
        if self.credentials is None or self.rotate_every <= 0:
            await stop.wait()  # a task that ends would end the agent
            return
        wait = self.rotate_every
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            if stop.is_set():
                return
            if self.credentials.joining:
                wait = 60.0
                continue
            try:
                until = await self.fleet.rotate_credential()
            except Unreachable as exc:
                log.warning("credential rotation failed (%s); retrying in 60 s", exc)
                wait = 60.0
                continue
            log.info("node credential rotated", extra={"previous_valid_until": until})
            wait = self.rotate_every

    async def close(self) -> None:
        await self.publisher.close()
        await self.fleet.close()
        await self.scheduler.close()
        self.backend.close()
        close_runner = getattr(self.agent.runner, "close", None)  # the process runner's fork server
        if close_runner is not None:
            close_runner()


def node_labels(configured: Mapping[str, str], container_runtime: str | None) -> dict[str, str]:
    """The labels this node registers with: the operator's, plus the container runtime that answered
    (image jobs are placed only on nodes that have one)."""
    labels = dict(configured)
    if container_runtime:
        labels[CONTAINER_RUNTIME_LABEL] = container_runtime
    return labels


def bootstrap(settings: AgentSettings, backend: GpuBackend | None = None) -> AgentApp:
    state_dir = settings.agent_state_dir
    join = settings.agent_join_token.get_secret_value() if settings.agent_join_token else None
    credentials = AgentCredentials(CredentialStore(state_dir / CREDENTIAL_FILE), join)
    backend = backend or make_backend(settings)
    # The node's record signing key: its metric samples and job output are taken only as its own.
    signer = RecordSigner.load_or_create(state_dir)
    fleet = FleetClient(settings.fleet_grpc_target, credentials, signer.public_key)
    scheduler = SchedulerClient(settings.scheduler_grpc_target, credentials, settings.agent_poll_seconds)
    publisher = KafkaMetricsPublisher(settings, settings.agent_hostname, signer)
    # Jobs run beside the agent: its environment (tokens) and memory must be unreadable to them.
    make_undumpable()
    runner = ProcessRunner(
        state_dir,
        settings.agent_output_tail_bytes,
        SandboxSettings(
            jobs_root=settings.agent_jobs_dir,
            network=settings.agent_job_network,
            uid_first=settings.agent_job_uid_first,
            uid_last=settings.agent_job_uid_last,
            cgroup_parent=settings.agent_cgroup_parent,
            lang=settings.agent_job_lang,
            container_runtime=settings.agent_container_runtime,
            container_network=settings.agent_container_network,
            container_gpus=backend.real,  # simulated GPUs are nothing a runtime could hand a container
        ),
    )
    config = AgentConfig(
        hostname=settings.agent_hostname,
        # What the node is (organization, provider, spot) comes from its join token, not from here.
        provider="",
        organization_id=None,
        is_spot=False,
        agent_version=AGENT_VERSION,
        metrics_interval_seconds=settings.agent_metrics_interval_seconds,
        kill_grace_seconds=settings.agent_kill_grace_seconds,
        cpu_cores=settings.agent_cpu_cores or host.cpu_cores(),
        ram_mb=settings.agent_ram_mb or host.ram_mb(),
        labels=node_labels(settings.labels, runner.container_runtime_ready),
    )
    agent = NodeAgent(
        config,
        backend,
        fleet,
        scheduler,
        runner,
        publisher,
        ReportQueue(JsonReportStore(state_dir / REPORTS_FILE)),
        output=OutputShipper(
            KafkaOutputPublisher(settings, publisher, settings.agent_hostname),
            output_source,
            give_up_seconds=settings.agent_output_give_up_seconds,
        )
        if settings.agent_output_shipping
        else None,
    )
    return AgentApp(
        agent,
        fleet,
        scheduler,
        publisher,
        backend,
        credentials=credentials,
        rotate_every=settings.agent_credential_rotate_seconds,
    )
