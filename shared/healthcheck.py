"""Container health probes: ``python -m shared.healthcheck grpc HOST:PORT [HOST:PORT ...]`` or ``http URL``.

Exit 0 when every target answers SERVING / 2xx, 1 otherwise (what Docker and Kubernetes expect). Several
gRPC targets are a process with several listeners (fleet's and the scheduler's agent listener)."""

from __future__ import annotations

import sys


def grpc_ok(target: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).is_success
    except httpx.HTTPError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("grpc", "http") or (argv[0] == "http" and len(argv) != 2):
        print(
            "usage: python -m shared.healthcheck grpc HOST:PORT [HOST:PORT ...] | http URL", file=sys.stderr
        )
        return 2
    ok = all(grpc_ok(t) for t in argv[1:]) if argv[0] == "grpc" else http_ok(argv[1])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
