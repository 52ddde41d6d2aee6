"""Fleet's verification of node credentials, as the scheduler sees it (``NodeRegistryService``'s
``AuthenticateNode`` and ``AuthenticateNodes``), for tests and benchmarks that run without fleet:
credentials the test minted (``nodes``), valid until removed; every call is recorded."""

from __future__ import annotations

import uuid

import grpc
from gpufleet.v1 import fleet_pb2, fleet_pb2_grpc


class FakeNodeRegistry(fleet_pb2_grpc.NodeRegistryServiceServicer):
    def __init__(self, *, batch: bool = True) -> None:
        self.nodes: dict[str, uuid.UUID] = {}
        self.single: list[str] = []  # AuthenticateNode's credentials, in call order
        self.batches: list[list[str]] = []  # AuthenticateNodes' calls
        self._batch = batch  # False: an older fleet, without AuthenticateNodes

    async def AuthenticateNode(self, request, context):  # type: ignore[no-untyped-def]
        self.single.append(request.credential)
        node = self.nodes.get(request.credential)
        if node is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid node credential")
        return fleet_pb2.NodeIdentity(node_id=str(node))

    async def AuthenticateNodes(self, request, context):  # type: ignore[no-untyped-def]
        if not self._batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "an older fleet")
        self.batches.append(list(request.credentials))
        return fleet_pb2.AuthenticateNodesResponse(
            identities=[
                fleet_pb2.NodeIdentity(node_id=str(self.nodes[c]))
                if c in self.nodes
                else fleet_pb2.NodeIdentity()
                for c in request.credentials
            ]
        )
