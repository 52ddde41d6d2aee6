"""Composition root of job output: the unit of work, the followers' signal, the consumers, the gRPC
servicer and the two periodic rounds (completing attempts whose end never came, retention). The
runtime (``__main__``) runs them beside the rest of monitoring; tests build the same over their own
database or a fake unit of work."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from faststream.kafka import KafkaBroker
from gpufleet.v1 import output_pb2_grpc

from shared.consumers import RecordVerifier
from shared.db import Database
from shared.grpc import Authenticator

from .adapters.output_repository import sql_output_unit_of_work
from .bootstrap import GrpcService
from .config import MonitoringSettings
from .domain.output import split_limit
from .entrypoints import output_consumers
from .entrypoints.output_server import SERVICE_NAME, JobOutputServicer
from .service_layer import output_commands as commands
from .service_layer.output_handlers import OutputDependencies, handle
from .service_layer.output_ports import OutputSignals, OutputUnitOfWorkFactory

log = logging.getLogger("gpufleet.monitoring.output")


@dataclass(frozen=True)
class OutputApp:
    deps: OutputDependencies
    retention_days: int
    end_grace_seconds: float
    sweep_every_seconds: float
    prune_every_seconds: float
    grpc_services: list[GrpcService] = field(default_factory=list)
    verifier: RecordVerifier | None = None  # the agents' signatures (None: not checked)

    def register_consumers(self, broker: KafkaBroker) -> None:
        output_consumers.register(broker, self.deps, verify=self.verifier)

    async def complete_once(self) -> int:
        """One round: attempts that ended a grace period ago without their end of output are complete."""
        done: int = await handle(commands.CompleteEndedOutput(self.end_grace_seconds), self.deps)
        return done

    async def prune_once(self) -> int:
        deleted: int = await handle(commands.PruneOutput(self.retention_days), self.deps)
        if deleted:
            log.info("deleted expired job output", extra={"attempts": deleted, "days": self.retention_days})
        return deleted


def bootstrap_output(
    settings: MonitoringSettings,
    *,
    db: Database | None,
    auth: Authenticator,
    uow: OutputUnitOfWorkFactory | None = None,
    verifier: RecordVerifier | None = None,
) -> OutputApp:
    if uow is None:
        if db is None:
            raise ValueError("bootstrap_output needs a database or a unit-of-work factory")
        uow = sql_output_unit_of_work(db)
    head, tail = split_limit(settings.monitoring_output_max_bytes)
    deps = OutputDependencies(uow=uow, signals=OutputSignals(), head=head, tail=tail)
    servicer = JobOutputServicer(deps, auth)
    return OutputApp(
        deps=deps,
        retention_days=settings.monitoring_output_retention_days,
        end_grace_seconds=settings.monitoring_output_end_grace_seconds,
        sweep_every_seconds=settings.monitoring_output_sweep_seconds,
        prune_every_seconds=settings.monitoring_retention_sweep_seconds,
        grpc_services=[(output_pb2_grpc.add_JobOutputServiceServicer_to_server, servicer, SERVICE_NAME)],
        verifier=verifier,
    )
