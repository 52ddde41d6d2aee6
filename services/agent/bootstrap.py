"""Composition root: settings -> adapters -> the control loop. Tests build the same pieces with fakes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.runtime import Fatal

from . import AGENT_VERSION
from .adapters import host
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
from .service_layer.ports import GpuBackend, GpuBackendError
from .service_layer.report_queue import ReportQueue

REPORTS_FILE = "pending_reports.json"


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

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.agent.run(stop)
        except GpuBackendError as exc:
            raise Fatal(f"agent cannot start: {exc}") from exc

    async def close(self) -> None:
        await self.publisher.close()
        await self.fleet.close()
        await self.scheduler.close()
        self.backend.close()


def bootstrap(settings: AgentSettings, backend: GpuBackend | None = None) -> AgentApp:
    token = settings.agent_token.get_secret_value()
    backend = backend or make_backend(settings)
    fleet = FleetClient(settings.fleet_grpc_target, token)
    scheduler = SchedulerClient(settings.scheduler_grpc_target, token, settings.agent_poll_seconds)
    publisher = KafkaMetricsPublisher(settings, settings.agent_hostname)
    state_dir = settings.agent_state_dir
    config = AgentConfig(
        hostname=settings.agent_hostname,
        provider=settings.agent_provider,
        organization_id=str(settings.agent_organization_id) if settings.agent_organization_id else None,
        is_spot=settings.agent_is_spot,
        agent_version=AGENT_VERSION,
        metrics_interval_seconds=settings.agent_metrics_interval_seconds,
        kill_grace_seconds=settings.agent_kill_grace_seconds,
        cpu_cores=settings.agent_cpu_cores or host.cpu_cores(),
        ram_mb=settings.agent_ram_mb or host.ram_mb(),
        labels=settings.labels,
    )
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
        ),
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
    return AgentApp(agent, fleet, scheduler, publisher, backend)
