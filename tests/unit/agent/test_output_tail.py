from __future__ import annotations

import pytest

from services.agent.domain.output_tail import OutputTail


def test_short_output_is_kept_whole():
    tail = OutputTail(16)
    tail.feed(b"hello ")
    tail.feed(b"world")
    assert tail.text() == "hello world"
    assert not tail.truncated


def test_only_the_last_bytes_are_kept_across_chunks():
    tail = OutputTail(8)
    for chunk in (b"0123", b"4567", b"89ab"):
        tail.feed(chunk)
    assert tail.text() == "456789ab"
    assert tail.truncated and tail.total_bytes == 12


def test_a_chunk_larger_than_the_limit_keeps_its_end():
    tail = OutputTail(4)
    tail.feed(b"xx")
    tail.feed(b"abcdefgh")
    assert tail.text() == "efgh"


def test_a_cut_inside_a_multibyte_character_drops_the_fragment():
    tail = OutputTail(4)
    tail.feed("aé€".encode())  # 1 + 2 + 3 bytes: the last 4 start with the second byte of "é"
    assert tail.text() == "€"


def test_invalid_utf8_is_replaced_not_fatal():
    tail = OutputTail(16)
    tail.feed(b"ok \xff\xfe end")
    assert tail.text() == "ok \ufffd\ufffd end"


def test_zero_limit_keeps_nothing_but_counts():
    tail = OutputTail(0)
    tail.feed(b"abc")
    assert tail.text() == "" and tail.total_bytes == 3


def test_negative_limit_is_refused():
    with pytest.raises(ValueError):
        OutputTail(-1)
