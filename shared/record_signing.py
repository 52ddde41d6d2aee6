"""Signed agent records: each node signs the Kafka records it writes (metric samples, job output) with its
own Ed25519 key, and consumers check the signature against the key fleet holds for that node.

Why: every agent writes to the broker as the same principal (or, on the embedded broker, as nobody), so
the broker cannot tell one node's records from another's. Without a signature, anything that can write to
the metrics or output topic can claim any node: fake utilization on another organization's GPUs, or
write into another tenant's job output on the node that runs it. With one, a record is taken only from
the node it names.

What is signed (:func:`signed_bytes`): the topic, the record key, the CloudEvents id, type and source, and
the value, each length-prefixed after a version tag. Headers other than those (trace context) are not.
The signer's node id travels in the ``gpufleet-signer`` header and the signature in
``gpufleet-signature`` (base64); a consumer also checks that the record's own node id is the signer's.

A signed record can be sent again by someone who read it (the broker keeps it anyway); consumers of these
topics are idempotent on what a record names (a sample per GPU and time, an output chunk per sequence
number), so a replay changes nothing. The private key never leaves the agent's state folder
(``record_key.pem``, mode 0600); fleet stores the public key with each registration.
"""

from __future__ import annotations

import base64
import logging
import os
import struct
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential_jitter

from shared.events import header_map

log = logging.getLogger("gpufleet.record_signing")

SIGNER_HEADER = "gpufleet-signer"
SIGNATURE_HEADER = "gpufleet-signature"
KEY_FILE = "record_key.pem"
PUBLIC_KEY_BYTES = 32
_TAG = b"gpufleet-record-v1"


def signed_bytes(topic: str, key: bytes | None, headers: dict[str, str], value: bytes | None) -> bytes:
    """What the signature covers, unambiguous (every field length-prefixed)."""
    parts = [
        topic.encode(),
        key or b"",
        headers.get("ce_id", "").encode(),
        headers.get("ce_type", "").encode(),
        headers.get("ce_source", "").encode(),
        value or b"",
    ]
    return _TAG + b"".join(struct.pack(">I", len(p)) + p for p in parts)


class RecordSigner:
    """An agent's signing key: adds the signer and signature headers to a record it is about to send."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def load_or_create(cls, state_dir: Path) -> RecordSigner:
        """The key in ``state_dir/record_key.pem``, created (mode 0600, atomically) when there is none."""
        path = state_dir / KEY_FILE
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            return cls(_create(path))
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the record signing key in {path}: {exc}") from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise RuntimeError(f"{path} does not hold an Ed25519 private key")
        return cls(loaded)

    @property
    def public_key(self) -> bytes:
        """Raw 32 bytes, as fleet stores and serves it."""
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(
        self, node_id: str, topic: str, key: bytes | None, headers: list[tuple[str, bytes]], value: bytes
    ) -> list[tuple[str, bytes]]:
        """``headers`` with the signer (``node_id``) and the signature over the record added."""
        signature = self._key.sign(signed_bytes(topic, key, header_map(headers), value))
        return [
            *headers,
            (SIGNER_HEADER, node_id.encode()),
            (SIGNATURE_HEADER, base64.b64encode(signature)),
        ]


def _create(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


def signer_of(headers: Any) -> str | None:
    """The node id a record says signed it, or None when it names none."""
    return header_map(headers).get(SIGNER_HEADER) or None


def check(public_key: bytes, topic: str, key: bytes | None, headers: Any, value: bytes | None) -> str | None:
    """None when the record's signature is ``public_key``'s over it; else why not."""
    h = header_map(headers)
    encoded = h.get(SIGNATURE_HEADER)
    if not encoded:
        return "the record is not signed"
    try:
        signature = base64.b64decode(encoded, validate=True)
    except ValueError:
        return "the record's signature is not base64"
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signed_bytes(topic, key, h, value))
    except (InvalidSignature, ValueError):
        return "the record's signature does not verify with its node's key"
    return None


def valid_public_key(raw: bytes) -> bool:
    if len(raw) != PUBLIC_KEY_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return False
    return True


def node_ids(records: Iterable[Any]) -> set[str]:
    """The signers the records name (to fetch their keys at once)."""
    return {s for r in records if (s := signer_of(getattr(r, "headers", None))) is not None}


class KeySource(Protocol):
    async def keys(self, node_ids: set[str], *, refresh: set[str]) -> dict[str, bytes]:
        """The record keys of those of ``node_ids`` that have one; ``refresh``: asked again, not cached."""
        ...


class SignedRecords:
    """The check a consumer of a signed topic makes (shared.consumers ``verify``): each record signed, by
    a node whose key fleet holds, over exactly what it carries, and naming that node as its own
    (``node_id`` of its data). A signature that fails with a cached key is checked again with the key
    asked anew (the node may have registered a new one)."""

    def __init__(self, keys: KeySource) -> None:
        self._keys = keys

    async def verify(self, items: list[tuple[Any, Any]]) -> list[str | None]:
        signers = {s for record, _ in items if (s := signer_of(record.headers)) is not None}
        keys = await self._keys.keys(signers, refresh=set()) if signers else {}
        reasons = [self._reason(record, envelope, keys) for record, envelope in items]
        retry = {
            signer_of(record.headers) or ""
            for (record, _), reason in zip(items, reasons, strict=True)
            if reason is not None and signer_of(record.headers) is not None
        }
        if retry:
            keys = await self._keys.keys(retry, refresh=retry)
            reasons = [
                self._reason(record, envelope, keys) if reason is not None else None
                for (record, envelope), reason in zip(items, reasons, strict=True)
            ]
        return reasons

    @staticmethod
    def _reason(record: Any, envelope: Any, keys: dict[str, bytes]) -> str | None:
        signer = signer_of(record.headers)
        if signer is None:
            return "the record is not signed"
        public_key = keys.get(signer)
        if public_key is None:
            return f"node {signer} has no record key (unknown, decommissioned, or it does not sign)"
        if reason := check(public_key, record.topic, record.key, record.headers, record.value):
            return reason
        named = getattr(envelope.data, "node_id", None)
        if str(named or "") != signer:
            return f"the record names node {named or '(none)'} but is signed by node {signer}"
        return None


class FleetRecordKeys:
    """Record keys asked of fleet's NodeRegistryService (GetRecordKeys), cached: a key for ``ttl``
    seconds, a node without one for ``missing_ttl`` (it may be registering now). Fleet unreachable: asked
    again with backoff until it answers (the consumer waits, as it does for its database)."""

    def __init__(self, target: str, *, ttl: float = 60.0, missing_ttl: float = 2.0) -> None:
        from gpufleet.v1 import fleet_pb2_grpc

        from shared.grpc import channel

        self._channel = channel(target)
        self._stub = fleet_pb2_grpc.NodeRegistryServiceStub(self._channel)
        self._ttl, self._missing_ttl = ttl, missing_ttl
        self._cache: dict[str, tuple[float, bytes | None]] = {}

    async def keys(self, node_ids: set[str], *, refresh: set[str]) -> dict[str, bytes]:
        now = time.monotonic()
        wanted = sorted(n for n in node_ids if n in refresh or not self._fresh(n, now))
        if wanted:
            found = await self._ask(wanted)
            if len(self._cache) > MAX_CACHED_KEYS:
                self._cache.clear()
            for node_id in wanted:
                self._cache[node_id] = (now, found.get(node_id))
        return {n: key for n in node_ids if (key := self._cache.get(n, (0.0, None))[1]) is not None}

    def _fresh(self, node_id: str, now: float) -> bool:
        hit = self._cache.get(node_id)
        if hit is None:
            return False
        return now - hit[0] < (self._ttl if hit[1] is not None else self._missing_ttl)

    async def _ask(self, node_ids: list[str]) -> dict[str, bytes]:
        import grpc
        from gpufleet.v1 import fleet_pb2

        valid = [n for n in node_ids if _is_uuid(n)]  # another signer name can never have a key
        found: dict[str, bytes] = {}
        for start in range(0, len(valid), MAX_KEYS_PER_CALL):
            request = fleet_pb2.GetRecordKeysRequest(node_ids=valid[start : start + MAX_KEYS_PER_CALL])
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(
                    lambda e: (
                        isinstance(e, grpc.aio.AioRpcError)
                        and e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                    )
                ),
                wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
                stop=stop_never,
                before_sleep=lambda state: log.warning(
                    "fleet does not answer for record keys; retrying",
                    extra={"error": repr(state.outcome.exception()) if state.outcome else ""},
                ),
            ):
                with attempt:
                    answer = await self._stub.GetRecordKeys(request, timeout=5)
            found.update({k.node_id: bytes(k.public_key) for k in answer.keys})
        return found

    async def close(self) -> None:
        await self._channel.close()


MAX_CACHED_KEYS = 100_000
MAX_KEYS_PER_CALL = 1000


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
