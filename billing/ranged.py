"""The budgeted ranged reader every header parser reads through (billing/header.py).

Inputs live in object storage: each read is a round trip, so reads go through one
read-ahead buffer and are charged to a byte budget and a request cap. Two formats read
differently, each explicitly: SVG reads a bounded prefix (`prefix`), PDF the whole object
(`whole`, bounded by the object's known size, the caller's upload limit).
"""

from __future__ import annotations

from collections.abc import Callable

# read(offset, length) -> bytes (fewer at EOF); a memoryview serves in-memory buffers uncopied
Read = Callable[[int, int], bytes | memoryview]

AHEAD = 4096  # bytes fetched per request: headers are small, but requests are not free
FAR = 1 << 62  # "end of file" when the size is unknown
_MAX_REQUESTS = 2048  # ranged reads per budgeted header: each one is a store round trip
# Fields read per header, whatever the bytes budget: a walk is Python steps, and a 52 MB GIF
# of 26M one-byte sub-blocks took the gateway 8.4 s of CPU. 2^20 reads take ~0.2 s here;
# an honest file needs far fewer (a GIF's sub-blocks are 255 bytes: 2^20 of them is 256 MB).
MAX_STEPS = 1 << 20


class Stop(Exception):
    """Truncated, malformed or over budget: read_header answers None."""


class Exhausted(Exception):
    """The walk took MAX_STEPS reads: read_header refuses the input. Not a Stop, which a
    walk may take as the end of a truncated animation and keep what it saw."""


class Src:
    """Ranged reads through one read-ahead buffer, charged to a budget (None: unlimited)."""

    def __init__(self, read: Read, size: int | None, budget: int | None) -> None:
        self._read, self.size, self.budget = read, size, budget
        self.ahead = AHEAD if budget is None else max(1, min(AHEAD, budget))
        self.used, self.requests, self._off, self._buf = 0, 0, 0, b""
        self.steps = 0

    @property
    def end(self) -> int:
        return FAR if self.size is None else self.size

    def get(self, off: int, n: int) -> bytes:  # exactly n bytes at off, else Stop
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Exhausted
        start = off - self._off
        # Serve from the buffer; a 0-byte request never reaches the store (S3: "to the end").
        if n == 0 or 0 <= start <= len(self._buf) - n:
            return self._buf[start : start + n]
        if off + n > self.end:  # truncated: never ask a store for bytes past a known end
            raise Stop
        data = self._fetch(off, max(n, min(self.ahead, self.end - off)))
        if len(data) < n:
            raise Stop
        return data[:n]

    def _fetch(self, off: int, want: int) -> bytes:
        if self.budget is not None and (
            self.used + want > self.budget or self.requests >= _MAX_REQUESTS
        ):
            raise Stop
        data = bytes(self._read(off, want))[:want]
        self.used += len(data)
        self.requests += 1
        self._off, self._buf = off, data
        return data

    def prefix(self, limit: int) -> bytes:
        """The first `limit` bytes, or the whole object if it is shorter (SVG: a bounded
        prefix, charged to the budget like any read)."""
        want = min(limit, self.end)
        if want <= len(self._buf) and self._off == 0:
            return self._buf[:want]
        return self._fetch(0, want) if want > 0 else b""

    def whole(self) -> bytes:
        """Every byte of an object of known size (PDF: its page tree can be anywhere, the
        cross-reference table is at the end). The budget is lifted: the object's size,
        bounded by the upload limit, is the bound."""
        if self.size is None:
            raise Stop  # unbounded: no whole read without a known size
        self.budget = None
        data = self.prefix(self.size)
        if len(data) < self.size:
            raise Stop
        return data

    def find_ff(self, off: int) -> int:
        """The offset of the next 0xFF byte at or after off (JPEG junk skipping)."""
        while True:
            self.get(off, 1)  # the buffer now starts at or before off
            found = self._buf.find(b"\xff", off - self._off)
            if found >= 0:
                return self._off + found
            off = self._off + len(self._buf)
