"""The stored output's shape: head + marker + tail past the limit, chunk fitting, view windows."""

from __future__ import annotations

import pytest

from services.monitoring.domain.output import (
    INCOMPLETE_MARKER,
    Layout,
    Literal,
    RawPiece,
    accept_chunk,
    cut_marker,
    keep_range,
    lost_filler,
    split_limit,
)


def view_of(raw: bytes, layout: Layout) -> bytes:
    out = b""
    for p in layout.pieces():
        out += raw[p.start : p.end] if isinstance(p, RawPiece) else p.data
    return out


def test_below_the_limit_the_view_is_the_output() -> None:
    raw = b"x" * 100
    layout = Layout(100, head=60, tail=40)
    assert not layout.truncated and layout.cut == 0
    assert view_of(raw, layout) == raw and layout.size == 100


def test_past_the_limit_head_marker_and_tail_with_the_cut_count() -> None:
    raw = bytes(range(256)) * 4  # 1024 bytes
    layout = Layout(len(raw), head=100, tail=50)
    assert layout.truncated and layout.cut == 1024 - 150
    marker = cut_marker(874, 100, 50)
    assert b"874 bytes of output cut here" in marker and marker.endswith(b"\n")
    assert view_of(raw, layout) == raw[:100] + marker + raw[-50:]
    assert layout.size == 150 + len(marker)


def test_windows_cut_across_head_marker_and_tail() -> None:
    raw = b"".join(b"%05d\n" % i for i in range(1000))
    layout = Layout(len(raw), head=700, tail=300)
    whole = view_of(raw, layout)
    for offset, n in [(0, 10), (695, 20), (705, 2000), (len(whole) - 5, 100), (len(whole) + 3, 10)]:
        got = b""
        for p in layout.window(offset, n):
            got += raw[p.start : p.end] if isinstance(p, RawPiece) else p.data
        assert got == whole[offset : offset + n]


def test_raw_of_view_maps_a_tail_offset_back() -> None:
    layout = Layout(1000, head=100, tail=100)
    marker = layout.marker()
    assert layout.raw_of_view(50) == 50
    assert layout.raw_of_view(100 + len(marker) + 10) == 910
    assert layout.raw_of_view(100 + 3) == 900  # inside the marker: the tail's start


def test_incomplete_marker_only_when_something_arrived() -> None:
    assert Layout(0, 10, 10, incomplete=True).pieces() == []
    pieces = Layout(5, 10, 10, incomplete=True).pieces()
    assert pieces[-1] == Literal(INCOMPLETE_MARKER)


def test_accept_skips_what_was_received_and_clips_overlaps() -> None:
    assert accept_chunk(0, 0, b"abc") == accept_chunk(0, 0, b"abc")
    first = accept_chunk(0, 0, b"abc")
    assert (first.offset, first.data, first.received, first.duplicate) == (0, b"abc", 3, False)
    replay = accept_chunk(3, 0, b"abc")
    assert replay.duplicate and replay.data == b"" and replay.received == 3
    overlap = accept_chunk(3, 1, b"bcdef")  # other boundaries after an agent restart
    assert (overlap.offset, overlap.data, overlap.received) == (3, b"def", 6)


def test_a_gap_is_filled_with_a_marker_of_its_exact_length() -> None:
    got = accept_chunk(10, 50, b"zz")
    assert got.filler_offset == 10 and len(got.filler) == 40 and b"lost" in got.filler
    assert got.received == 52
    for n in (0, 1, 5, 200):
        assert len(lost_filler(n)) == n


def test_keep_range_keeps_head_and_tail_window_only() -> None:
    layout = Layout(10_000, head=100, tail=100)
    assert keep_range(layout, 0, 10) and keep_range(layout, 95, 10)
    assert not keep_range(layout, 200, 100)
    assert keep_range(layout, 9_850, 100) and not keep_range(layout, 5, 0)


def test_split_limit() -> None:
    assert split_limit(8 * 1024 * 1024) == (4 * 1024 * 1024, 4 * 1024 * 1024)
    assert split_limit(101) == (50, 51)
    with pytest.raises(ValueError):
        split_limit(1)
