"""Signed agent records (shared.record_signing): what a signature covers, the key file, and the check a
consumer makes (signed, by a node with a key, over exactly this record, naming that node)."""

from __future__ import annotations

import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.events import Envelope
from shared.record_signing import (
    KEY_FILE,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    RecordSigner,
    SignedRecords,
    check,
    signer_of,
    valid_public_key,
)

TOPIC = "gpufleet.metrics.v1"


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Data:
    node_id: uuid.UUID | None


def _record(signer: RecordSigner, node: str, *, topic: str = TOPIC, value: bytes = b'{"x":1}') -> Record:
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"t.v1"),
        ("ce_source", b"gpufleet/agent/n"),
    ]
    key = node.encode()
    return Record(topic, key, value, signer.sign(node, topic, key, headers, value))


def _signer() -> RecordSigner:
    return RecordSigner(Ed25519PrivateKey.generate())


def test_a_signed_record_verifies_with_its_key_and_names_its_signer() -> None:
    signer, node = _signer(), str(uuid.uuid4())
    r = _record(signer, node)
    assert signer_of(r.headers) == node
    assert check(signer.public_key, r.topic, r.key, r.headers, r.value) is None
    assert valid_public_key(signer.public_key)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: Record(r.topic, r.key, r.value + b" ", r.headers),
        lambda r: Record("gpufleet.output.v1", r.key, r.value, r.headers),
        lambda r: Record(r.topic, b"another-node", r.value, r.headers),
        lambda r: Record(
            r.topic, r.key, r.value, [(k, b"t2.v1" if k == "ce_type" else v) for k, v in r.headers]
        ),
        lambda r: Record(
            r.topic, r.key, r.value, [(k, b"gpufleet/x" if k == "ce_source" else v) for k, v in r.headers]
        ),
        lambda r: Record(
            r.topic,
            r.key,
            r.value,
            [(k, str(uuid.uuid4()).encode() if k == "ce_id" else v) for k, v in r.headers],
        ),
    ],
    ids=["value", "topic", "key", "type", "source", "id"],
)
def test_any_change_to_what_is_signed_fails(tamper: Any) -> None:
    signer = _signer()
    r = tamper(_record(signer, str(uuid.uuid4())))
    assert check(signer.public_key, r.topic, r.key, r.headers, r.value) is not None


def test_another_key_an_unsigned_record_and_a_garbled_signature_fail() -> None:
    signer, node = _signer(), str(uuid.uuid4())
    r = _record(signer, node)
    assert "does not verify" in (check(_signer().public_key, r.topic, r.key, r.headers, r.value) or "")
    unsigned = [(k, v) for k, v in r.headers if k != SIGNATURE_HEADER]
    assert "not signed" in (check(signer.public_key, r.topic, r.key, unsigned, r.value) or "")
    garbled = [(k, b"!!" if k == SIGNATURE_HEADER else v) for k, v in r.headers]
    assert check(signer.public_key, r.topic, r.key, garbled, r.value) is not None
    assert not valid_public_key(b"\x00" * 31)


def test_the_key_file_is_created_private_and_read_back(tmp_path: Path) -> None:
    first = RecordSigner.load_or_create(tmp_path / "state")
    path = tmp_path / "state" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert RecordSigner.load_or_create(tmp_path / "state").public_key == first.public_key
    path.write_text("not a key")
    with pytest.raises(RuntimeError, match="record signing key"):
        RecordSigner.load_or_create(tmp_path / "state")


@dataclass
class Keys:
    """Fleet's answers: ``current`` now; ``cached`` what an earlier answer said (until refreshed)."""

    current: dict[str, bytes]
    cached: dict[str, bytes] = field(default_factory=dict)
    asked: list[tuple[set[str], set[str]]] = field(default_factory=list)

    async def keys(self, node_ids: set[str], *, refresh: set[str]) -> dict[str, bytes]:
        self.asked.append((set(node_ids), set(refresh)))
        for n in node_ids:
            if n in refresh or n not in self.cached:
                if n in self.current:
                    self.cached[n] = self.current[n]
                else:
                    self.cached.pop(n, None)
        return {n: self.cached[n] for n in node_ids if n in self.cached}


def _item(record: Record, named: str | None) -> tuple[Record, Envelope]:
    data = Data(uuid.UUID(named) if named else None)
    return record, Envelope(type="t.v1", source="gpufleet/agent/n", data=data)  # type: ignore[arg-type]


async def test_the_consumers_check_takes_only_records_of_the_node_that_signed_them() -> None:
    a, b = _signer(), _signer()
    node_a, node_b, unknown = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    keys = Keys({node_a: a.public_key, node_b: b.public_key})
    unsigned = _record(a, node_a)
    unsigned.headers = [(k, v) for k, v in unsigned.headers if k not in (SIGNER_HEADER, SIGNATURE_HEADER)]
    items = [
        _item(_record(a, node_a), node_a),  # good
        _item(_record(a, node_a), node_b),  # a's signature, names b's node
        _item(_record(b, node_a), node_a),  # b signs as a
        _item(_record(_signer(), unknown), unknown),  # no key at fleet
        _item(unsigned, node_a),
        _item(_record(b, node_b), node_b),  # good
    ]
    reasons = await SignedRecords(keys).verify(items)
    assert reasons[0] is None and reasons[5] is None
    assert "names node" in (reasons[1] or "")
    assert "does not verify" in (reasons[2] or "")
    assert "has no record key" in (reasons[3] or "")
    assert "not signed" in (reasons[4] or "")


async def test_a_node_that_registered_a_new_key_is_asked_again_not_refused_on_a_stale_one() -> None:
    old, new, node = _signer(), _signer(), str(uuid.uuid4())
    keys = Keys({node: new.public_key}, cached={node: old.public_key})
    [reason] = await SignedRecords(keys).verify([_item(_record(new, node), node)])
    assert reason is None
    assert keys.asked[-1] == ({node}, {node})
