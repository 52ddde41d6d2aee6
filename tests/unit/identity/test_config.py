"""Identity settings fail fast on a missing or weak admin token."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.identity.config import IdentitySettings


def test_defaults_and_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_IDENTITY_DATABASE_URL", "postgresql://gpufleet_identity@db/gpufleet")
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "a-long-enough-operator-token")
    settings = IdentitySettings()
    assert settings.identity_grpc_listen == "127.0.0.1:15051"
    assert settings.admin_token.get_secret_value() == "a-long-enough-operator-token"
    assert "a-long-enough" not in repr(settings)


@pytest.mark.parametrize("token", [None, "", "short"])
def test_admin_token_is_required_and_not_short(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setenv("GPUFLEET_IDENTITY_DATABASE_URL", "postgresql://gpufleet_identity@db/gpufleet")
    monkeypatch.delenv("GPUFLEET_ADMIN_TOKEN", raising=False)
    if token is not None:
        monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError) as err:
        IdentitySettings()
    assert "admin_token" in str(err.value)


def test_audit_retention_is_off_by_default_and_never_shorter_than_replays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GPUFLEET_IDENTITY_DATABASE_URL", "postgresql://gpufleet_identity@db/gpufleet")
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "a-long-enough-operator-token")
    assert IdentitySettings().identity_audit_retention_days == 0  # kept indefinitely
    monkeypatch.setenv("GPUFLEET_IDENTITY_AUDIT_RETENTION_DAYS", "400")
    assert IdentitySettings().identity_audit_retention_days == 400
    monkeypatch.setenv("GPUFLEET_IDENTITY_AUDIT_RETENTION_DAYS", "7")  # inside the outbox replay window
    with pytest.raises(ValidationError, match="at least 30"):
        IdentitySettings()
