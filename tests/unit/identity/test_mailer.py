"""Invite mail settings and message: the SMTP URL fails at start-up when wrong, and the message carries
the token to its invitee only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.identity.adapters.mailer import SmtpServer, invite_message
from services.identity.config import IdentitySettings
from services.identity.domain.model import Role
from services.identity.service_layer.dependencies import InviteMail


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("smtp", "mail.example.com", 25)),
        (
            "smtp+starttls://u%40x:p%2Fw@mail.example.com:2525",
            SmtpServer("smtp+starttls", "mail.example.com", 2525, "u@x", "p/w"),
        ),
        ("smtps://relay.example.com", SmtpServer("smtps", "relay.example.com", 465)),
    ],
)
def test_smtp_urls(url: str, expected: SmtpServer) -> None:
    assert SmtpServer.parse(url) == expected
    assert "p/w" not in repr(SmtpServer.parse(url))


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://host/path", "smtp://host?x=1"])
def test_bad_smtp_urls_fail_at_start_up(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("GPUFLEET_IDENTITY_DATABASE_URL", "postgresql://gpufleet_identity@db/gpufleet")
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "a-long-enough-operator-token")
    monkeypatch.setenv("GPUFLEET_SMTP_URL", url)
    with pytest.raises(ValidationError) as err:
        IdentitySettings()
    assert "smtp_url" in str(err.value)


def test_no_smtp_url_means_no_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_IDENTITY_DATABASE_URL", "postgresql://gpufleet_identity@db/gpufleet")
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "a-long-enough-operator-token")
    monkeypatch.setenv("GPUFLEET_SMTP_URL", "")
    assert IdentitySettings().smtp_server() is None
    monkeypatch.setenv("GPUFLEET_SMTP_URL", "smtp://user:secret@mail.example.com")
    settings = IdentitySettings()
    assert settings.smtp_server() == SmtpServer("smtp", "mail.example.com", 25, "user", "secret")
    assert "secret" not in repr(settings)


def test_the_invite_message() -> None:
    mail = InviteMail(
        "vera@example.com", "Acme", Role.VIEWER, "gpi_" + "a" * 43, datetime(2025, 1, 8, tzinfo=UTC)
    )
    message = invite_message(mail, "gpufleet <noreply@example.com>")
    assert (message["To"], message["From"]) == ("vera@example.com", "gpufleet <noreply@example.com>")
    assert "Acme" in message["Subject"]
    body = message.get_content()
    assert mail.token in body and "viewer" in body and "2025-01-08" in body
