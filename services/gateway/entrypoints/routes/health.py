"""/livez (the process is alive) and /readyz (whether the gateway can do its work, and what is broken)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.domain import readiness
from services.gateway.entrypoints.auth import DownstreamDep
from services.gateway.entrypoints.responses import HealthOut, ReadyOut, ServiceReadyOut

router = APIRouter(tags=["health"])


@router.get("/livez", response_model=HealthOut, summary="Liveness: the process answers")
async def livez() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/healthz", response_model=HealthOut, summary="Liveness (old name of /livez)", deprecated=True)
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    response_model_exclude_none=True,
    summary="Readiness: every downstream service's health and its dependencies",
    responses={503: {"model": ReadyOut, "description": "Identity or the scheduler is not serving"}},
)
async def readyz(request: Request, down: DownstreamDep) -> ReadyOut | JSONResponse:
    services = await down.readiness(request.app.state.readiness_timeout)
    body = ReadyOut(
        status=readiness.status(services),
        services={
            name: ServiceReadyOut(serving=h.serving, dependencies=h.dependencies, error=h.error)
            for name, h in services.items()
        },
    )
    if body.status == readiness.UNAVAILABLE:
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return body
