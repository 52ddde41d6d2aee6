"""Invite mail over SMTP with the standard library's ``smtplib`` (in a worker thread, so the event loop
never waits on a mail server).

``GPUFLEET_SMTP_URL`` says where: ``smtp://host:port`` (plain), ``smtp+starttls://host:port`` (STARTTLS
before anything else is sent) or ``smtps://host:port`` (TLS from the first byte), with
``user:password@`` before the host when the server wants a login. A mail that cannot be handed over is
logged and reported as not mailed; the invite stands, and its token went back to the inviter.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from ..service_layer.dependencies import InviteMail

log = logging.getLogger("gpufleet.identity.mail")

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Raises ValueError naming what is wrong (the settings fail at start-up, not at the first mail)."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"the scheme must be one of {', '.join(sorted(SCHEMES))}")
        if not parts.hostname:
            raise ValueError("a host is required")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("only scheme, credentials, host and port are allowed")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or SCHEMES[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def invite_message(mail: InviteMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = f"You are invited to {mail.organization_name} on gpufleet"
    message.set_content(
        f"You are invited to join {mail.organization_name} as {mail.role.value}.\n\n"
        f"Your invite token (it works once, until {mail.expires_at.isoformat()}):\n\n"
        f"    {mail.token}\n\n"
        "Accept it with:\n\n"
        f"    curl -X POST $GATEWAY/v1/invites/accept -H 'Authorization: Bearer {mail.token}'\n\n"
        "The answer holds your API key, shown once. If you did not expect this, ignore this mail.\n"
    )
    return message


class SmtpMailer:
    def __init__(self, server: SmtpServer, sender: str) -> None:
        self.server = server
        self.sender = sender

    async def send_invite(self, mail: InviteMail) -> bool:
        message = invite_message(mail, self.sender)
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("invite mail not sent", extra={"host": self.server.host, "error": repr(exc)[:300]})
            return False
        return True

    def _send(self, message: EmailMessage) -> None:
        s = self.server
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if s.scheme == "smtps":
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=TIMEOUT_SECONDS, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=TIMEOUT_SECONDS)
        with client:
            if s.scheme == "smtp+starttls":
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password or "")
            client.send_message(message)
