"""The container probe: several gRPC listeners of one process are healthy only when every one is."""

from __future__ import annotations

from shared import healthcheck


def test_every_grpc_target_must_answer_serving(monkeypatch):
    up = {"127.0.0.1:1": True, "127.0.0.1:2": False}
    monkeypatch.setattr(healthcheck, "grpc_ok", lambda target: up[target])
    assert healthcheck.main(["grpc", "127.0.0.1:1"]) == 0
    assert healthcheck.main(["grpc", "127.0.0.1:1", "127.0.0.1:2"]) == 1
    assert healthcheck.main(["grpc", "127.0.0.1:2"]) == 1


def test_usage_errors_exit_2():
    assert healthcheck.main(["grpc"]) == 2
    assert healthcheck.main(["http", "http://a", "http://b"]) == 2
    assert healthcheck.main(["tcp", "127.0.0.1:1"]) == 2
