"""The AuditService servicer (the one audit log, docs/audit.md): wire <-> commands, nothing else."""

from __future__ import annotations

import json
from uuid import UUID

import grpc
from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from shared import scopes
from shared.errors import InvalidArgument, Unauthenticated
from shared.grpc import bearer, current_method, grpc_service
from shared.wire import parse_ts, ts

from ..domain.audit import AuditQuery, AuditRecord, decode_cursor
from ..domain.model import Principal
from ..service_layer import commands
from ..service_layer.audit import AuditPage
from ..service_layer.commands import ListAllAudit, ListAudit
from ..service_layer.handlers import Dependencies, handle

MAX_FILTER = 200


def _text(value: str, field: str) -> str | None:
    if len(value) > MAX_FILTER:
        raise InvalidArgument(f"{field} is longer than {MAX_FILTER} characters", field=field)
    return value or None


def _uuid(value: str, field: str) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not a valid UUID", field=field) from exc


def query_of(request: identity_pb2.ListAuditLogRequest, *, organization_id: UUID | None) -> AuditQuery:
    return AuditQuery(
        organization_id=organization_id,
        service=_text(request.service, "service"),
        action=_text(request.action, "action"),
        target_type=_text(request.target_type, "target_type"),
        target_id=_text(request.target_id, "target_id"),
        actor_user_id=_uuid(request.actor_user_id, "actor_user_id"),
        since=parse_ts(request.since, "since") if request.since else None,
        until=parse_ts(request.until, "until") if request.until else None,
        limit=request.limit,
        before_id=decode_cursor(request.cursor) if request.cursor else None,
    )


def _json(value: dict | None) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if value is not None else ""


def record_message(r: AuditRecord) -> identity_pb2.AuditLogRecord:
    a = r.actor
    return identity_pb2.AuditLogRecord(
        id=str(r.id or ""),
        organization_id=str(r.organization_id) if r.organization_id else "",
        actor=identity_pb2.AuditActor(
            kind=a.kind,
            user_id=str(a.user_id) if a.user_id else "",
            api_key_id=str(a.api_key_id) if a.api_key_id else "",
            operator_name=a.operator_name or "",
            node_id=str(a.node_id) if a.node_id else "",
        ),
        service=r.service,
        action=r.action,
        target_type=r.target_type,
        target_id=r.target_id,
        before_json=_json(r.before),
        after_json=_json(r.after),
        request_id=r.request_id or "",
        at=ts(r.at),
    )


def page_message(page: AuditPage) -> identity_pb2.ListAuditLogResponse:
    return identity_pb2.ListAuditLogResponse(
        records=[record_message(r) for r in page.records], next_cursor=page.next_cursor or ""
    )


@grpc_service
class AuditServicer(identity_pb2_grpc.AuditServiceServicer):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        key = bearer(context)
        if not key:
            raise Unauthenticated("missing API key (authorization: Bearer <key>)")
        principal: Principal = await handle(commands.Authenticate(key), self.deps)
        scopes.require(principal.scopes, current_method())
        return principal

    async def ListAudit(
        self, request: identity_pb2.ListAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListAuditLogResponse:
        caller = await self._caller(context)
        query = query_of(request, organization_id=caller.organization_id)
        return page_message(await handle(ListAudit(caller, query), self.deps))

    async def ListAllAudit(
        self, request: identity_pb2.ListAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListAuditLogResponse:
        org = _uuid(request.organization_id, "organization_id")
        query = query_of(request, organization_id=org)
        return page_message(await handle(ListAllAudit(query, operator_token=bearer(context)), self.deps))
