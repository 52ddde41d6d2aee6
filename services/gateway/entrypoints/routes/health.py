"""/healthz (the process is alive) and /readyz (every downstream service answers SERVING)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.domain import problems
from services.gateway.entrypoints.auth import DownstreamDep
from services.gateway.entrypoints.errors import problem_response
from services.gateway.entrypoints.responses import HealthOut, Problem, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: every downstream service is serving",
    responses={503: {"model": Problem, "description": "A downstream service is not serving"}},
)
async def readyz(request: Request, down: DownstreamDep) -> ReadyOut | JSONResponse:
    services = await down.readiness(request.app.state.readiness_timeout)
    failing = sorted(name for name, ok in services.items() if not ok)
    if failing:
        return problem_response(request, problems.SERVICE_UNAVAILABLE, f"not serving: {', '.join(failing)}")
    return ReadyOut(status="ready", services=services)
