"""The one audit log (identity's AuditService; docs/audit.md): every change in every service.

* ``GET /v1/audit``: the key's own organization's records (owner or admin, a key with ``audit:read``;
  anyone else gets a 403 problem).
* ``GET /v1/admin/audit-log``: every organization's and the fleet-wide records (the operator token),
  optionally one organization's. (``/v1/admin/audit`` is the scheduler's policy trail, docs/policy.md;
  its entries are in this log too.)

Newest first, cursor pages; filters by service, action, target, acting user and time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from gpufleet.v1 import identity_pb2, identity_pb2_grpc
from pydantic import BaseModel, Field

from services.gateway.adapters.downstream import Downstream
from services.gateway.entrypoints.auth import CallerDep, DownstreamDep
from services.gateway.entrypoints.routes import Cursor, PageSize, problem_responses
from services.gateway.entrypoints.routes.admin import OperatorDep

router = APIRouter(tags=["audit"])


class AuditActorOut(BaseModel):
    kind: str = Field(description="user | operator | node | system", examples=["user"])
    user_id: str | None = None
    api_key_id: str | None = None
    operator_name: str | None = Field(default=None, description="admin: the bootstrap operator")
    node_id: str | None = None


class AuditRecordOut(BaseModel):
    id: str
    organization_id: str | None = Field(description="null: a fleet-wide operator change")
    actor: AuditActorOut
    service: str = Field(examples=["scheduler"])
    action: str = Field(examples=["job.cancel"])
    target_type: str = Field(examples=["job"])
    target_id: str
    before: dict[str, Any] | None = Field(description="the state before (secrets redacted); null: none")
    after: dict[str, Any] | None = Field(description="the state after (secrets redacted); null: none")
    request_id: str | None = Field(description="the X-Request-ID of the request that made the change")
    at: str = Field(description="RFC 3339")


class AuditPageOut(BaseModel):
    records: list[AuditRecordOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: no more")


Text = Annotated[str | None, Query(max_length=200)]
Since = Annotated[datetime | None, Query(description="Only records at or after this time (RFC 3339).")]
Until = Annotated[datetime | None, Query(description="Only records before this time (RFC 3339).")]


def _stub(down: Downstream) -> identity_pb2_grpc.AuditServiceStub:
    return identity_pb2_grpc.AuditServiceStub(down.channels["identity"])


def _json(raw: str) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def _record(r: identity_pb2.AuditLogRecord) -> AuditRecordOut:
    a = r.actor
    return AuditRecordOut(
        id=r.id,
        organization_id=r.organization_id or None,
        actor=AuditActorOut(
            kind=a.kind,
            user_id=a.user_id or None,
            api_key_id=a.api_key_id or None,
            operator_name=a.operator_name or None,
            node_id=a.node_id or None,
        ),
        service=r.service,
        action=r.action,
        target_type=r.target_type,
        target_id=r.target_id,
        before=_json(r.before_json),
        after=_json(r.after_json),
        request_id=r.request_id or None,
        at=r.at,
    )


def _page(reply: identity_pb2.ListAuditLogResponse) -> AuditPageOut:
    return AuditPageOut(records=[_record(r) for r in reply.records], next_cursor=reply.next_cursor or None)


def audit_filters(
    service: Text = None,
    action: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    actor_user_id: Text = None,
    since: Since = None,
    until: Until = None,
    limit: PageSize = None,
    cursor: Cursor = None,
) -> identity_pb2.ListAuditLogRequest:
    """The query both routes take, as the request identity answers (unset filters left out)."""
    given = {
        "service": service,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "actor_user_id": actor_user_id,
        "limit": limit,
        "cursor": cursor,
    }
    return identity_pb2.ListAuditLogRequest(
        **{k: v for k, v in given.items() if v is not None},
        since=since.isoformat() if since else "",
        until=until.isoformat() if until else "",
    )


FiltersDep = Annotated[identity_pb2.ListAuditLogRequest, Depends(audit_filters)]


@router.get(
    "/v1/audit",
    response_model=AuditPageOut,
    responses=problem_responses(422),
    summary="Your organization's audit log: every change in every service, newest first (owner or admin)",
)
async def list_audit(caller: CallerDep, down: DownstreamDep, request: FiltersDep) -> AuditPageOut:
    return _page(await _stub(down).ListAudit(request, **caller.call))


@router.get(
    "/v1/admin/audit-log",
    response_model=AuditPageOut,
    responses=problem_responses(422),
    summary="Every organization's audit log and the fleet-wide changes, newest first (operator)",
)
async def list_all_audit(
    op: OperatorDep,
    down: DownstreamDep,
    request: FiltersDep,
    organization_id: Annotated[
        str | None, Query(max_length=36, description="Only this organization.")
    ] = None,
) -> AuditPageOut:
    if organization_id is not None:
        request.organization_id = organization_id
    return _page(await _stub(down).ListAllAudit(request, **op.call))
