"""A bounded tail of a job's output: the last ``limit`` bytes, whatever the job prints."""

from __future__ import annotations


class OutputTail:
    """Keeps only the newest ``limit`` bytes of a stream fed in arbitrary chunks.

    Memory stays bounded however much a job prints; ``text()`` decodes leniently because jobs print
    anything, and a cut may land inside a multi-byte UTF-8 character.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.limit = limit
        self._buf = bytearray()
        self.total_bytes = 0

    @classmethod
    def of_end(cls, limit: int, end: bytes, total_bytes: int) -> OutputTail:
        """The tail of a stream of ``total_bytes`` whose last bytes are ``end`` (read back from a file)."""
        tail = cls(limit)
        tail.total_bytes = max(0, total_bytes - len(end))
        tail.feed(end)
        return tail

    def feed(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        if self.limit == 0:
            return
        if len(chunk) >= self.limit:
            self._buf[:] = chunk[-self.limit :]
            return
        self._buf += chunk
        overflow = len(self._buf) - self.limit
        if overflow > 0:
            del self._buf[:overflow]

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self._buf)

    def text(self) -> str:
        data = bytes(self._buf)
        if self.truncated:
            # The cut may have split a character: drop its orphaned continuation bytes (10xxxxxx, at
            # most three) instead of showing a replacement character for a byte the job never printed.
            skip = 0
            while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", "replace")
