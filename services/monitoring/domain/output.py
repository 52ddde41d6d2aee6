"""A job attempt's stored output: which bytes are kept, and how the stored view maps onto them.

Two offset spaces:

* **raw**: positions in what the job printed (the agent's chunks carry raw offsets);
* **view**: positions in what a reader gets. Up to ``head + tail`` raw bytes the view *is* the raw
  output. Beyond it the view is the first ``head`` raw bytes, a marker line saying how many bytes were
  cut, then the last ``tail`` raw bytes. While such a job still prints, the tail slides (and the
  marker's count grows), so view offsets past the head are only stable once the output is complete.

Storage keeps the raw bytes in ``[0, head)`` and the ones in the tail window ``[received - tail,
received)``; older tail bytes are deleted as newer ones arrive, so an attempt never holds much more
than ``head + tail`` bytes however much the job prints. Pure code: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

INCOMPLETE_MARKER = b"\n[gpufleet] the output may be incomplete: its end never arrived from the node agent\n"


def cut_marker(cut: int, head: int, tail: int) -> bytes:
    return (
        f"\n[gpufleet] {cut} bytes of output cut here (the first {head} and the last {tail} bytes are kept)\n"
    ).encode()


def lost_filler(length: int) -> bytes:
    """Exactly ``length`` bytes standing for raw bytes that never arrived (lost in transit), so the
    offsets after them stay right: a marker line, shortened or padded to fit."""
    text = f"\n[gpufleet] {length} bytes of output were lost in transit\n".encode()
    if length <= len(text):
        return text[-length:] if length else b""
    return text[:-1] + b" " * (length - len(text)) + b"\n"


def split_limit(max_bytes: int) -> tuple[int, int]:
    """(head, tail) of a per-attempt limit: half each (the tail gets the odd byte)."""
    if max_bytes < 2:
        raise ValueError("the output limit must be at least 2 bytes")
    head = max_bytes // 2
    return head, max_bytes - head


@dataclass(frozen=True)
class RawPiece:
    """View bytes that are the raw bytes ``[start, end)``."""

    start: int
    end: int


@dataclass(frozen=True)
class Literal:
    """View bytes the store makes up (the cut marker, the incomplete marker)."""

    data: bytes


Piece = RawPiece | Literal


@dataclass(frozen=True)
class Layout:
    received: int  # raw bytes received: the end of the raw output so far
    head: int
    tail: int
    incomplete: bool = False  # completed without the agent's end-of-output: a marker at the end

    @property
    def truncated(self) -> bool:
        return self.received > self.head + self.tail

    @property
    def cut(self) -> int:
        return max(0, self.received - self.head - self.tail)

    @property
    def tail_start(self) -> int:
        """The first raw byte of the tail window (== head when nothing is cut)."""
        return self.received - self.tail if self.truncated else self.head

    def marker(self) -> bytes:
        return cut_marker(self.cut, self.head, self.tail) if self.truncated else b""

    def pieces(self) -> list[Piece]:
        """The whole view, in order."""
        out: list[Piece] = []
        if not self.truncated:
            if self.received:
                out.append(RawPiece(0, self.received))
        else:
            out += [RawPiece(0, self.head), Literal(self.marker()), RawPiece(self.tail_start, self.received)]
        if self.incomplete and self.received:
            out.append(Literal(INCOMPLETE_MARKER))
        return out

    @property
    def size(self) -> int:
        return sum(p.end - p.start if isinstance(p, RawPiece) else len(p.data) for p in self.pieces())

    def window(self, offset: int, limit: int) -> list[Piece]:
        """The pieces of view bytes ``[offset, offset + limit)`` (cut to what exists)."""
        out: list[Piece] = []
        pos, want_end = 0, offset + limit
        for piece in self.pieces():
            length = piece.end - piece.start if isinstance(piece, RawPiece) else len(piece.data)
            lo, hi = max(offset, pos), min(want_end, pos + length)
            if lo < hi:
                if isinstance(piece, RawPiece):
                    out.append(RawPiece(piece.start + lo - pos, piece.start + hi - pos))
                else:
                    out.append(Literal(piece.data[lo - pos : hi - pos]))
            pos += length
            if pos >= want_end:
                break
        return out

    def raw_of_view(self, offset: int) -> int:
        """The raw position a reader at view ``offset`` has reached (a follower's starting point)."""
        if not self.truncated or offset <= self.head:
            return offset
        past_marker = offset - self.head - len(self.marker())
        return min(self.tail_start + max(past_marker, 0), self.received)

    def kept(self, raw: int) -> bool:
        """Whether the raw byte at ``raw`` is stored (in the head or the tail window)."""
        return raw < self.head or self.tail_start <= raw < self.received


@dataclass(frozen=True)
class Accepted:
    """What to do with an arriving chunk: store ``data`` at raw ``offset`` (possibly nothing), after
    ``filler`` bytes at ``filler_offset`` when bytes before it never arrived."""

    offset: int
    data: bytes
    received: int  # the attempt's raw end after this chunk
    filler: bytes = b""
    filler_offset: int = 0
    duplicate: bool = False


def accept_chunk(received: int, offset: int, data: bytes) -> Accepted:
    """Fit a chunk at raw ``offset`` onto an attempt that has ``received`` raw bytes.

    A chunk (or its part) already received is skipped, so a replayed chunk, or one re-read by a
    restarted agent with other boundaries, stores each byte once. A chunk past the end means bytes were
    lost on the way (a broker that came back empty): a filler of the same length keeps offsets right."""
    end = offset + len(data)
    if end <= received:
        return Accepted(received, b"", received, duplicate=bool(data) or offset < received)
    if offset < received:
        return Accepted(received, data[received - offset :], end)
    if offset > received:
        return Accepted(offset, data, end, filler=lost_filler(offset - received), filler_offset=received)
    return Accepted(offset, data, end)


def keep_range(layout_after: Layout, offset: int, length: int) -> bool:
    """Whether raw bytes ``[offset, offset + length)`` are worth storing once the attempt has
    ``layout_after.received`` bytes: they touch the head or the tail window."""
    if length <= 0:
        return False
    return offset < layout_after.head or offset + length > layout_after.tail_start
