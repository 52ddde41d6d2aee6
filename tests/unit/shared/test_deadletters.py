"""Reading a dead letter back: its reason, its source, and the original record to re-drive."""

from __future__ import annotations

from shared.deadletters import latest_per_event, parse


class Record:
    def __init__(self, offset: int, headers: list[tuple[str, bytes]], key: bytes | None = b"job-1") -> None:
        self.partition, self.offset, self.key, self.value, self.headers = 2, offset, key, b'{"n": 1}', headers


def dlq_record(offset: int, ce_id: str | None = "0b0e4a4e-6a2f-4f5e-9d0c-1a2b3c4d5e6f") -> Record:
    headers = [
        ("ce_type", b"gpufleet.job.succeeded"),
        ("traceparent", b"00-abc-def-01"),
        ("x-dlq-reason", b"ValueError: no price for gpu type"),
        ("x-dlq-error-type", b"ValueError"),
        ("x-dlq-attempts", b"5"),
        ("x-dlq-consumer", b"billing.jobs"),
        ("x-dlq-source-topic", b"gpufleet.jobs.v1"),
        ("x-dlq-source-partition", b"1"),
        ("x-dlq-source-offset", b"41"),
    ]
    if ce_id:
        headers.insert(0, ("ce_id", ce_id.encode()))
    return Record(offset, headers)


def test_a_dead_letter_says_why_and_where_it_came_from() -> None:
    letter = parse("gpufleet.jobs.v1.dlq", dlq_record(7))
    assert letter.summary() == {
        "partition": 2,
        "offset": 7,
        "key": "job-1",
        "reason": "ValueError: no price for gpu type",
        "error_type": "ValueError",
        "attempts": 5,
        "consumer": "billing.jobs",
        "ce_id": "0b0e4a4e-6a2f-4f5e-9d0c-1a2b3c4d5e6f",
        "ce_type": "gpufleet.job.succeeded",
        "source_topic": "gpufleet.jobs.v1",
        "source_partition": 1,
        "source_offset": 41,
        "dead_lettered_at": None,
    }
    assert [k for k, _ in letter.original_headers()] == ["ce_id", "ce_type", "traceparent"]
    assert letter.value == b'{"n": 1}'


def test_without_source_headers_the_source_is_the_topic_before_dlq() -> None:
    letter = parse(
        "gpufleet.jobs.v1.dlq", Record(0, [("x-dlq-reason", b"missing CloudEvents headers")], key=None)
    )
    assert letter.source_topic == "gpufleet.jobs.v1" and letter.key is None and letter.attempts is None


def test_an_event_dead_lettered_twice_is_re_driven_once() -> None:
    letters = [
        parse("t.dlq", dlq_record(1)),
        parse("t.dlq", dlq_record(5, ce_id=None)),
        parse("t.dlq", dlq_record(9)),
    ]
    assert [d.offset for d in latest_per_event(letters)] == [5, 9]
