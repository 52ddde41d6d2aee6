"""Composition root: wires the database-backed unit of work, the operator token and the metrics into the
handlers, and the handlers into the gRPC servicer.

Tests build the same :class:`IdentityApp` over their own database (or an in-memory unit of work).
Identity takes no ``Authenticator``: it is the authenticator, so its servicer resolves callers' keys by
calling the ``Authenticate`` handler in-process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from faststream.kafka import KafkaBroker
from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from shared.db import Database

from .adapters.mailer import SmtpMailer
from .adapters.metrics import PrometheusMetrics
from .adapters.repository import sql_unit_of_work
from .config import IdentitySettings
from .domain.operator import OperatorToken
from .entrypoints import consumers as audit_consumers
from .entrypoints.audit_api import AuditServicer
from .entrypoints.grpc_server import IdentityServicer
from .entrypoints.projects_grpc import ProjectServicer
from .service_layer.audit import prune_audit
from .service_layer.commands import PruneAudit
from .service_layer.dependencies import Mailer, NoMailer
from .service_layer.handlers import Dependencies
from .service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("gpufleet.identity")

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
AUDIT_SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
PROJECT_SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["ProjectService"].full_name

# (add_XServicer_to_server, servicer, full service name): what the gRPC server registers and reports.
GrpcService = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


@dataclass(frozen=True)
class IdentityApp:
    deps: Dependencies
    grpc_services: list[GrpcService]
    audit_retention_days: int = 0  # 0: records are kept indefinitely

    async def prune_audit_once(self) -> int:
        """One round of audit retention (docs/audit.md): records past the retention are deleted."""
        if not self.audit_retention_days:
            return 0
        deleted = await prune_audit(PruneAudit(self.audit_retention_days), self.deps)
        if deleted:
            log.info("audit records past retention deleted", extra={"deleted": deleted})
        return deleted

    def register_consumers(self, broker: KafkaBroker) -> None:
        """The audit records of every other service, into the one log (docs/audit.md)."""
        audit_consumers.register(broker, self.deps)


def bootstrap(
    settings: IdentitySettings, *, db: Database, uow: UnitOfWorkFactory | None = None
) -> IdentityApp:
    server = settings.smtp_server()
    mailer: Mailer = SmtpMailer(server, settings.smtp_from) if server else NoMailer()
    deps = Dependencies(
        uow=uow or sql_unit_of_work(db),
        operator=OperatorToken(settings.admin_token.get_secret_value()),
        metrics=PrometheusMetrics(),
        mailer=mailer,
    )
    return IdentityApp(
        deps=deps,
        audit_retention_days=settings.identity_audit_retention_days,
        grpc_services=[
            (identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServicer(deps), SERVICE_NAME),
            (identity_pb2_grpc.add_AuditServiceServicer_to_server, AuditServicer(deps), AUDIT_SERVICE_NAME),
            (
                identity_pb2_grpc.add_ProjectServiceServicer_to_server,
                ProjectServicer(deps),
                PROJECT_SERVICE_NAME,
            ),
        ],
    )
