"""The agent's identity: its node credential, kept in the state folder, or the join token it starts with.

The join token (``GPUFLEET_AGENT_JOIN_TOKEN``) is read once, presented only to the first registration
and never written anywhere; fleet answers that registration with the node's credential, which is
written to ``<state>/node_credential.json`` (mode 0600, replaced atomically) before it is used, and
presented on every call to fleet and the scheduler from then on. A rotation writes the new credential
the same way (the old one keeps working for fleet's overlap). The agent never holds an API key or the
operator token.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from shared import node_identity

log = logging.getLogger("gpufleet.agent.credentials")

CREDENTIAL_FILE = "node_credential.json"


@dataclass(frozen=True)
class StoredCredential:
    node_id: str
    credential: str


class CredentialStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> StoredCredential | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the node credential in {self.path}: {exc}") from exc
        stored = StoredCredential(str(data.get("node_id", "")), str(data.get("credential", "")))
        if not node_identity.is_credential(stored.credential):
            raise RuntimeError(f"{self.path} does not hold a node credential")
        return stored

    def save(self, stored: StoredCredential) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"node_id": stored.node_id, "credential": stored.credential}, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


class AgentCredentials:
    """What the agent presents: its node credential once it has one, else its join token."""

    def __init__(self, store: CredentialStore, join_token: str | None) -> None:
        self._store = store
        self._stored = store.load()
        # Spent or not needed: a node that has its credential never presents a join token again.
        self._join_token = None if self._stored else (join_token or None)

    @property
    def node_id(self) -> str | None:
        return self._stored.node_id if self._stored else None

    @property
    def has_identity(self) -> bool:
        return self._stored is not None or self._join_token is not None

    @property
    def joining(self) -> bool:
        return self._stored is None

    def secret(self) -> str:
        if self._stored is not None:
            return self._stored.credential
        return self._join_token or ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.secret()}"),)

    def issued(self, node_id: str, credential: str) -> None:
        """Keep a credential fleet issued (written before it is used); the join token is dropped."""
        if not node_identity.is_credential(credential):
            raise RuntimeError("fleet answered something that is not a node credential")
        stored = StoredCredential(node_id, credential)
        self._store.save(stored)
        self._stored, self._join_token = stored, None
        log.info("node credential stored", extra={"node_id": node_id, "path": str(self._store.path)})
