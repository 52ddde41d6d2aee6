"""identity's word on a project the caller named (ProjectService/ResolveProject), cached briefly.

The caller's own API key goes in the request, as with Authenticate: identity answers the project as
that key may see it (NOT_FOUND for an unknown id, another organization's, or another project than the
key is bound to) and needs no scope for it. Answers (found, archived or not found) are cached for
``ttl`` seconds per (key, project), so a burst of submits into one project asks once, and an archive
takes effect within ``ttl``. identity unreachable: the submit fails UNAVAILABLE (never an unchecked
project).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from uuid import UUID

import grpc
from gpufleet.v1 import identity_pb2, identity_pb2_grpc

from shared.errors import Unauthenticated, Unavailable
from shared.grpc import channel

from ..service_layer.projects import ProjectState

_MAX_ENTRIES = 10_000


class IdentityProjectDirectory:
    def __init__(
        self,
        target: str,
        *,
        ttl: float = 2.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        use_channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._owns_channel = use_channel is None
        self._channel = use_channel or channel(target)
        self._stub = identity_pb2_grpc.ProjectServiceStub(self._channel)
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[tuple[bytes, UUID], tuple[float, ProjectState | None]] = {}

    async def state(self, api_key: str | None, project_id: UUID) -> ProjectState | None:
        if not api_key:
            raise Unauthenticated("missing API key (authorization: Bearer <key>)")
        key = (hashlib.sha256(api_key.encode()).digest(), project_id)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            project = await self._stub.ResolveProject(
                identity_pb2.ResolveProjectRequest(api_key=api_key, project_id=str(project_id)),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                answer: ProjectState | None = None
            elif exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated("identity refused the caller's credentials") from exc
            else:
                raise Unavailable(f"identity's projects are unavailable: {exc.code().name}") from exc
        else:
            answer = ProjectState.ARCHIVED if project.archived_at else ProjectState.ACTIVE
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, answer)
        return answer

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()
