"""Signed agent records end to end (issue 9, shared.record_signing): anything that can write to the
metrics or output topic can name any node, but monitoring takes a record only when that node signed it.
Records forged for the suite's real node (unsigned, signed with another key, or a genuine record with its
value changed) are dead-lettered with the reason and never ingested; the node's own records still are."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contracts import topics
from shared.events import header_map
from shared.record_signing import SIGNATURE_HEADER, SIGNER_HEADER, RecordSigner

pytestmark = pytest.mark.e2e


async def _a_genuine_record(bootstrap: str):  # type: ignore[no-untyped-def]
    """One metrics record the suite's agent signed (the topic always has some: it samples every second)."""
    consumer = AIOKafkaConsumer(
        topics.METRICS,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-signed-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for record in (r for rs in batch.values() for r in rs):
                    if SIGNATURE_HEADER in header_map(record.headers):
                        return record
    finally:
        await consumer.stop()


async def _dead_lettered(bootstrap: str, ids: set[str]) -> dict[str, str]:
    """ce_id -> the reason, for each of ``ids`` parked on the metrics dead-letter topic."""
    consumer = AIOKafkaConsumer(
        topics.dead_letter(topics.METRICS),
        bootstrap_servers=bootstrap,
        group_id=f"e2e-signed-dlq-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:
        async with asyncio.timeout(60):
            while set(found) != ids:
                batch = await consumer.getmany(timeout_ms=500)
                for record in (r for rs in batch.values() for r in rs):
                    h = header_map(record.headers)
                    if h.get("ce_id") in ids:
                        found[h["ce_id"]] = h.get("x-dlq-reason", "")
    finally:
        await consumer.stop()
    return found


async def test_records_not_signed_by_the_node_they_name_are_dead_lettered(stack, e2e_kafka) -> None:  # type: ignore[no-untyped-def]
    genuine = await _a_genuine_record(e2e_kafka.bootstrap)
    node = header_map(genuine.headers)[SIGNER_HEADER]
    base = [(k, v) for k, v in genuine.headers if k not in ("ce_id", SIGNER_HEADER, SIGNATURE_HEADER)]

    def fresh() -> tuple[str, list[tuple[str, bytes]]]:
        ce_id = str(uuid.uuid4())
        return ce_id, [*base, ("ce_id", ce_id.encode())]

    unsigned_id, unsigned = fresh()
    other_id, other = fresh()
    other = RecordSigner(Ed25519PrivateKey.generate()).sign(
        node, topics.METRICS, genuine.key, other, genuine.value
    )
    # The genuine signature on a changed record (its id is signed too: a replayed id is its own record).
    changed_id = str(uuid.uuid4())
    changed = [(k, changed_id.encode() if k == "ce_id" else v) for k, v in genuine.headers]

    producer = AIOKafkaProducer(bootstrap_servers=e2e_kafka.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for headers in (unsigned, other, changed):
            await producer.send_and_wait(topics.METRICS, genuine.value, key=genuine.key, headers=headers)
    finally:
        await producer.stop()

    reasons = await _dead_lettered(e2e_kafka.bootstrap, {unsigned_id, other_id, changed_id})
    assert "not signed" in reasons[unsigned_id]
    assert "does not verify" in reasons[other_id]
    assert "does not verify" in reasons[changed_id]
