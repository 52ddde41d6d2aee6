"""Identity reads the audit topic, so its settings need a broker address (none is contacted here)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _kafka_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
