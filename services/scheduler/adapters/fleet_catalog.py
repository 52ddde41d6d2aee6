"""GPU type names from fleet's catalog (FleetService.ListGpuTypes), cached for ``ttl`` seconds.

The catalog belongs to fleet; the scheduler only needs to refuse a type nobody could ever provide.
The caller's own ``authorization`` is forwarded, so fleet authorizes the lookup as that caller. When
fleet cannot be reached, a catalog fetched before is used (a type list changes rarely); with none,
the submit fails UNAVAILABLE rather than accept an unchecked type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
from gpufleet.v1 import common_pb2, fleet_pb2_grpc

from shared.errors import Unauthenticated, Unavailable
from shared.grpc import channel

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class FleetGpuTypeCatalog:
    def __init__(
        self,
        target: str,
        *,
        ttl: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = channel(target)
        self._stub = fleet_pb2_grpc.FleetServiceStub(self._channel)
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._names: frozenset[str] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def names(self, authorization: str | None) -> frozenset[str]:
        if self._names is not None and self._clock() < self._expires:
            return self._names
        async with self._lock:  # one fetch at a time; the others then find it cached
            if self._names is not None and self._clock() < self._expires:
                return self._names
            metadata = (("authorization", authorization),) if authorization else ()
            try:
                response = await self._stub.ListGpuTypes(
                    common_pb2.Empty(), metadata=metadata, timeout=self._timeout
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise Unauthenticated("fleet refused the caller's credentials") from exc
                if exc.code() in _TRANSIENT and self._names is not None:
                    return self._names
                raise Unavailable(f"fleet's GPU type catalog is unavailable: {exc.code().name}") from exc
            self._names = frozenset(t.name for t in response.gpu_types)
            self._expires = self._clock() + self._ttl
            return self._names

    async def close(self) -> None:
        await self._channel.close()
