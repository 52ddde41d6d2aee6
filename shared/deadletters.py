"""List and re-drive dead-lettered records (``<topic>.dlq``, written by :mod:`shared.consumers`).

::

    python -m shared.deadletters list    --topic gpufleet.jobs.v1.dlq [--bootstrap HOST:PORT]
    python -m shared.deadletters redrive --topic gpufleet.jobs.v1.dlq (--ce-id ID [--ce-id ID ...] | --all)

``list`` prints one JSON line per record on the dead-letter topic (partition, offset, key, reason, error
type, attempts, consumer group, ce_id, ce_type, source topic/partition/offset, dead-lettered at).
``redrive`` re-publishes each chosen record's original value, key and headers (without the ``x-dlq-*``
ones) to its source topic and prints one JSON line per record sent. Every consumer group of that topic
sees it again; the ones that applied it already skip it (their ledger has its ``ce_id``), so a re-drive
counts nothing twice — re-driving the same record twice is harmless too. The dead-letter topic itself is
left as it is (Kafka cannot delete one record): its records stay listable until retention drops them.

The broker is ``--bootstrap`` or ``GPUFLEET_KAFKA_BOOTSTRAP_SERVERS`` (with the rest of the
``GPUFLEET_KAFKA_*`` settings, e.g. ``GPUFLEET_KAFKA_IDEMPOTENT_PRODUCER=false`` for the embedded broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import header_map
from shared.kafka import client_security, make_producer, topic_partitions
from shared.settings import KafkaSettings

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    reason: str
    error_type: str
    attempts: int | None
    consumer: str
    ce_id: str | None
    ce_type: str | None
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    dead_lettered_at: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def summary(self) -> dict[str, Any]:
        """What ``list`` prints (no payload: it may be large, and it is on the source topic's format)."""
        out = asdict(self)
        del out["value"], out["headers"]
        return out

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.lower().startswith("x-dlq-")]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def parse(dlq_topic: str, record: Any) -> DeadLetter:
    raw = tuple((str(k), bytes(v or b"")) for k, v in (record.headers or ()))
    h = header_map(raw)
    source = h.get("x-dlq-source-topic") or dlq_topic.removesuffix(DLQ_SUFFIX)
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        reason=h.get("x-dlq-reason", ""),
        error_type=h.get("x-dlq-error-type", ""),
        attempts=_int(h.get("x-dlq-attempts")),
        consumer=h.get("x-dlq-consumer", ""),
        ce_id=h.get("ce_id"),
        ce_type=h.get("ce_type"),
        source_topic=source,
        source_partition=_int(h.get("x-dlq-source-partition")),
        source_offset=_int(h.get("x-dlq-source-offset")),
        dead_lettered_at=h.get("x-dlq-time"),
        value=bytes(record.value or b""),
        headers=raw,
    )


async def read_dead_letters(
    settings: KafkaSettings, topic: str, *, timeout: float = 30.0
) -> list[DeadLetter]:
    """Everything on ``topic`` up to its end offsets as of now, in partition then offset order."""
    bootstrap = settings.kafka_bootstrap_servers
    security = client_security(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="gpufleet-deadletters", **security)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id="gpufleet-deadletters", enable_auto_commit=False, **security
    )
    await admin.start()
    try:
        tps = await topic_partitions(admin, [topic])
        if not tps:
            return []
        await consumer.start()
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        got: list[DeadLetter] = []
        async with asyncio.timeout(timeout):
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for tp, records in batch.items():
                    got.extend(parse(topic, r) for r in records if r.offset < ends[tp])
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return sorted(got, key=lambda d: (d.partition, d.offset))
    finally:
        await consumer.stop()
        await admin.close()


async def redrive(settings: KafkaSettings, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """Re-publish ``letters`` to their source topics (original value, key, headers); returns them."""
    chosen = list(letters)
    if not chosen:
        return []
    producer = make_producer(settings, "gpufleet-deadletters")
    await producer.start()
    try:
        for letter in chosen:
            await producer.send_and_wait(
                letter.source_topic,
                value=letter.value,
                key=letter.key.encode() if letter.key is not None else None,
                headers=letter.original_headers(),
            )
    finally:
        await producer.stop()
    return chosen


def latest_per_event(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One letter per ``ce_id`` (the last; an event re-driven and dead-lettered again is there twice);
    letters without a ``ce_id`` (undecodable records) are all kept."""
    by_id: dict[str, DeadLetter] = {}
    anonymous: list[DeadLetter] = []
    for letter in letters:
        if letter.ce_id:
            by_id[letter.ce_id] = letter
        else:
            anonymous.append(letter)
    return sorted([*by_id.values(), *anonymous], key=lambda d: (d.partition, d.offset))


def _settings(bootstrap: str | None) -> KafkaSettings:
    if bootstrap:
        return KafkaSettings(kafka_bootstrap_servers=bootstrap)
    return KafkaSettings()  # type: ignore[call-arg]  # GPUFLEET_KAFKA_BOOTSTRAP_SERVERS from the env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.deadletters", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("list", "print the records of a dead-letter topic"), ("redrive", "re-publish them")):
        sub = commands.add_parser(name, help=help_)
        sub.add_argument("--topic", required=True, help="the dead-letter topic, e.g. gpufleet.jobs.v1.dlq")
        sub.add_argument("--bootstrap", help="broker address (default: $GPUFLEET_KAFKA_BOOTSTRAP_SERVERS)")
        if name == "redrive":
            which = sub.add_mutually_exclusive_group(required=True)
            which.add_argument(
                "--ce-id", action="append", dest="ce_ids", help="a record's ce_id (repeatable)"
            )
            which.add_argument("--all", action="store_true", help="every record on the topic")
    return parser


async def amain(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args.bootstrap)
    letters = await read_dead_letters(settings, args.topic)
    missing: set[str] = set()
    if args.command == "redrive":
        wanted = set(args.ce_ids or ())
        letters = await redrive(
            settings, latest_per_event(d for d in letters if args.all or d.ce_id in wanted)
        )
        missing = wanted - {d.ce_id for d in letters if d.ce_id}
    for letter in letters:
        line = letter.summary()
        print(json.dumps({"redriven": True, **line} if args.command == "redrive" else line), file=out)
    for ce_id in sorted(missing):
        print(f"no dead letter with ce_id {ce_id} on {args.topic}", file=sys.stderr)
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(argv))


if __name__ == "__main__":
    sys.exit(main())
