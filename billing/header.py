"""Image size from the header alone, so the gateway can quote a price before a job runs.

Standard library only (the gateway imports billing/), never decodes pixels, and reads through
a ranged-read callable (inputs live in object storage, up to 50 MB) within a byte budget that
only an explicit frame walk (count_frames) lifts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass

# read(offset, length) -> bytes (fewer at EOF); a memoryview serves in-memory buffers uncopied
Read = Callable[[int, int], bytes | memoryview]

_AHEAD = 4096  # bytes fetched per request: headers are small, but requests are not free
_SEGMENT_AHEAD = 1024  # JPEG: a few tables per read, ~1 KB per skipped APPn segment
_WALK_AHEAD = 64  # frame walks: room for a chunk or IFD header, never frame data in bulk
_FAR = 1 << 62  # "end of file" when the size is unknown
_MAX_PAGES = 10_000  # TIFF IFD chains are attacker-controlled
_MAX_REQUESTS = 2048  # ranged reads per budgeted header: each one is a store round trip
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Header:
    format: str  # "png" | "jpeg" | "gif" | "webp" | "avif" | "tiff" | "bmp"
    width: int  # as stored: EXIF orientation does not change the pixel count
    height: int
    frames: int  # 1 for stills; frames or pages of an animation / multi-page file
    # (width, height) of each page as the decoder presents it, where pages differ (TIFF
    # pages; a GIF canvas that later frames grow); empty: every page is width x height.
    pages: tuple[tuple[int, int], ...] = ()
    # SVG and PDF: sizes are at 72 dpi and the job's `density` sets the pixels drawn.
    scalable: bool = False

    def page_size(self, page: int) -> tuple[int, int]:
        return self.pages[page] if page < len(self.pages) else (self.width, self.height)

    def largest(self) -> tuple[int, int]:
        """The biggest page: what decoding every page costs per page, at most."""
        return max([(self.width, self.height), *self.pages], key=lambda s: s[0] * s[1])


class _Stop(Exception):
    """Truncated, malformed or over budget: read_header answers None."""


class _Src:
    """Ranged reads through one read-ahead buffer, charged to a budget (None: unlimited)."""

    def __init__(self, read: Read, size: int | None, budget: int | None) -> None:
        self._read, self.size, self.budget = read, size, budget
        self.ahead = _AHEAD if budget is None else max(1, min(_AHEAD, budget))
        self.used, self.requests, self._off, self._buf = 0, 0, 0, b""

    def get(self, off: int, n: int) -> bytes:  # exactly n bytes at off, else _Stop
        start = off - self._off
        # Serve from the buffer; a 0-byte request never reaches the store (S3: "to the end").
        if n == 0 or 0 <= start <= len(self._buf) - n:
            return self._buf[start : start + n]
        end = _FAR if self.size is None else self.size
        if off + n > end:  # truncated: never ask a store for bytes past a known end
            raise _Stop
        want = max(n, min(self.ahead, end - off))
        if self.budget is not None and (
            self.used + want > self.budget or self.requests >= _MAX_REQUESTS
        ):
            raise _Stop
        data = bytes(self._read(off, want))[:want]
        self.used += len(data)
        self.requests += 1
        self._off, self._buf = off, data
        if len(data) < n:
            raise _Stop
        return data[:n]

    def find_ff(self, off: int) -> int:
        """The offset of the next 0xFF byte at or after off (JPEG junk skipping)."""
        while True:
            self.get(off, 1)  # the buffer now starts at or before off
            found = self._buf.find(b"\xff", off - self._off)
            if found >= 0:
                return self._off + found
            off = self._off + len(self._buf)


def _png(src: _Src, count_frames: bool) -> Header | None:
    length, typ, width, height = struct.unpack(">I4sII", src.get(8, 16))
    if length != 13 or typ != b"IHDR":
        return None
    frames, off = 1, 33
    while typ not in (b"IDAT", b"IEND"):  # acTL must precede IDAT; skip chunks by length
        length, typ = struct.unpack(">I4s", src.get(off, 8))
        if typ == b"acTL" and length >= 8:
            (n,) = struct.unpack(">I", src.get(off + 8, 4))
            frames = n if 0 < n <= 0x80000000 else 1  # Pillow ignores a bogus count too
            break
        off += 12 + length
    return Header("png", width, height, frames)


def _jpeg(src: _Src, count_frames: bool) -> Header | None:
    """Markers up to the first scan, as libjpeg and Pillow walk them: junk bytes before a
    marker are skipped, segments are skipped by their length (small reads: a file may hold
    hundreds of APPn segments), and the largest frame header (SOF) seen is the size."""
    off, size = 2, None
    src.ahead = min(src.ahead, _SEGMENT_AHEAD)
    while True:
        off = src.find_ff(off)
        marker = src.get(off + 1, 1)[0]
        if marker in (0xFF, 0x00):  # a fill byte, or an escaped FF that decoders skip
            off += 1 if marker == 0xFF else 2
        elif marker in (0xD9, 0xDA):  # EOI or the first scan: the header is over
            return Header("jpeg", *size, 1) if size else None
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            off += 2
        else:
            (length,) = struct.unpack(">H", src.get(off + 2, 2))
            if marker in _SOF:  # length, precision, height, width
                height, width = struct.unpack(">HH", src.get(off + 5, 4))
                if size is None or width * height > size[0] * size[1]:
                    size = (width, height)
            off += 2 + max(length, 2)


def _gif_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_sub_blocks(src: _Src, off: int) -> int:
    while (n := src.get(off, 1)[0]) != 0:
        off += 1 + n
    return off + 1


def _gif(src: _Src, count_frames: bool) -> Header | None:
    width, height, flags = struct.unpack("<HHB", src.get(6, 5))
    off, pages = 13 + _gif_table(flags), []
    if count_frames:  # no count in the header: visit every block, reading in big pieces
        src.budget, src.ahead = None, 1 << 16
    with suppress(_Stop):  # a cut inside the animation keeps the frames seen
        while (tag := src.get(off, 1)[0]) != 0x3B:
            if tag == 0x21:  # extension: label, then sub-blocks
                off = _gif_sub_blocks(src, off + 2)
            elif tag == 0x2C:  # image descriptor
                x, y, w, h, fl = struct.unpack("<HHHHB", src.get(off + 1, 9))
                width, height = max(width, x + w), max(height, y + h)  # Pillow grows the canvas
                pages.append((width, height))  # the canvas as this frame is decoded
                if not count_frames:
                    break
                off = _gif_sub_blocks(src, off + 11 + _gif_table(fl))  # +1: LZW code size
            else:
                off += 1  # stray byte: Pillow skips it as well
    differ = any(page != pages[-1] for page in pages)
    return (
        Header("gif", width, height, len(pages), tuple(pages) if differ else ()) if pages else None
    )


def _webp(src: _Src, count_frames: bool) -> Header | None:
    riff, riff_size = struct.unpack("<4sI", src.get(0, 8))
    if riff != b"RIFF":
        return None
    typ, _ = struct.unpack("<4sI", src.get(12, 8))
    if typ == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit width and height
        tag, code, w, h = struct.unpack("<3s3sHH", src.get(20, 10))
        return Header("webp", w & 0x3FFF, h & 0x3FFF, 1) if code == b"\x9d\x01\x2a" else None
    if typ == b"VP8L":  # lossless: signature, then width-1 and height-1 in 14 bits each
        sig, bits = struct.unpack("<BI", src.get(20, 5))
        width, height = (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
        return Header("webp", width, height, 1) if sig == 0x2F else None
    if typ != b"VP8X":
        return None
    d = src.get(20, 10)  # flags, 3 reserved bytes, 24-bit canvas width-1 and height-1
    width, height = int.from_bytes(d[4:7], "little") + 1, int.from_bytes(d[7:10], "little") + 1
    frames = 1
    if count_frames and d[0] & 0x02:  # animation flag: count ANMF chunks, skipping frame data
        src.budget, src.ahead = None, _WALK_AHEAD  # frame walk: no total cap, small reads
        frames, off, end = 0, 12, min(8 + riff_size, src.size or _FAR)
        with suppress(_Stop):  # truncated animation: keep the frames seen
            while off + 8 <= end:
                typ, n = struct.unpack("<4sI", src.get(off, 8))
                frames += typ == b"ANMF"
                off += 8 + n + (n & 1)  # chunks are padded to even sizes
    return Header("webp", width, height, frames)


def _boxes(src: _Src, off: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of each ISOBMFF box in [off, end)."""
    while off < end:
        size, typ = struct.unpack(">I4s", src.get(off, 8))
        body = off + 8
        if size == 1:  # 64-bit size after the type
            (size,) = struct.unpack(">Q", src.get(body, 8))
            body += 8
        elif size == 0:  # extends to the end of its parent
            size = end - off
        if size < body - off or off + size > end:
            raise _Stop
        yield typ, body, off + size
        off += size


def _find(src: _Src, off: int, end: int, *path: bytes) -> tuple[int, int] | None:
    """Payload range of the first box along path, e.g. meta/iprp/ipco."""
    for want in path:
        for typ, body, box_end in _boxes(src, off, end):
            if typ == want:
                off, end = body + (4 if want == b"meta" else 0), box_end  # meta is a FullBox
                break
        else:
            return None
    return off, end


def _ipma(data: bytes, item: int) -> list[int]:
    """1-based ipco indices of the properties that ipma associates with item."""
    if len(data) < 8:  # version, flags, entry count
        return []
    id_size = 4 if data[0] else 2  # version 1: 32-bit item ids
    size, mask = (2, 0x7FFF) if data[3] & 1 else (1, 0x7F)  # top bit: "essential" flag
    p = 8
    while p + id_size < len(data):  # entry: item id, n, then n property indices
        item_id, n = int.from_bytes(data[p : p + id_size], "big"), data[p + id_size]
        p += id_size + 1
        if item_id == item:
            return [
                int.from_bytes(data[k : k + size], "big") & mask
                for k in range(p, p + n * size, size)
            ]
        p += n * size
    return []


def _avif(src: _Src, count_frames: bool) -> Header | None:
    top = src.size if src.size is not None else _FAR
    typ, body, off = next(_boxes(src, 0, top))
    brands = src.get(body, min(off - body, 256))  # major, minor version, compatible...
    kinds = {brands[i : i + 4] for i in range(0, len(brands), 4)}
    if typ != b"ftyp" or not kinds & {b"avif", b"avis"}:
        return None
    meta = _find(src, off, top, b"meta")
    ipco = _find(src, *meta, b"iprp", b"ipco") if meta else None
    if not meta or not ipco:
        return None
    spes = {}  # ipco index -> (width, height) of every ispe property
    for i, (typ, body, _) in enumerate(_boxes(src, *ipco), 1):
        if typ == b"ispe":
            spes[i] = struct.unpack(">II", src.get(body + 4, 8))
    sides = sorted(spes.values(), key=lambda s: s[0] * s[1]) or [(0, 0)]  # fallback: largest
    pitm, ipma = _find(src, *meta, b"pitm"), _find(src, *meta, b"iprp", b"ipma")
    if pitm and ipma:  # the primary item's own ispe wins (a grid has one for the whole canvas)
        primary = int.from_bytes(src.get(pitm[0] + 4, 4 if src.get(pitm[0], 1)[0] else 2), "big")
        props = _ipma(src.get(ipma[0], ipma[1] - ipma[0]), primary)
        sides += [spes[i] for i in reversed(props) if i in spes]
    width, height = sides[-1]
    frames = 1
    if count_frames and b"avis" in kinds:  # image sequence: sample count of the first track
        src.budget = None  # frame walk: no total cap; box headers only, mdat is skipped
        with suppress(_Stop):
            stsz = _find(src, off, top, b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsz")
            frames = struct.unpack(">I", src.get(stsz[0] + 8, 4))[0] if stsz else 1
    return Header("avif", width, height, frames)


def _tiff_page(src: _Src, e: str, ifd: int) -> tuple[int, int, int]:
    """(entry count, width, height) of the IFD at ifd."""
    (n,) = struct.unpack(e + "H", src.get(ifd, 2))
    entries, width, height = src.get(ifd + 2, 12 * n), 0, 0
    for i in range(0, 12 * n, 12):
        tag, typ = struct.unpack_from(e + "HH", entries, i)
        if tag in (256, 257) and typ in (3, 4):  # ImageWidth / ImageLength, SHORT or LONG
            (value,) = struct.unpack_from(e + ("H" if typ == 3 else "I"), entries, i + 8)
            width, height = (value, height) if tag == 256 else (width, value)
    return n, width, height


def _tiff(src: _Src, count_frames: bool) -> Header | None:
    e = "<" if src.get(0, 2) == b"II" else ">"
    magic, ifd = struct.unpack(e + "HI", src.get(2, 6))
    if magic != 42:  # 43 is BigTIFF, not supported
        return None
    n, width, height = _tiff_page(src, e, ifd)
    seen, pages = {ifd}, [(width, height)]
    if count_frames:  # frame walk: no total cap, small reads
        src.budget, src.ahead = None, _WALK_AHEAD
    with suppress(_Stop):  # follow next-IFD offsets until a bad link; every page's size
        while count_frames and len(seen) < _MAX_PAGES:
            (ifd,) = struct.unpack(e + "I", src.get(ifd + 2 + 12 * n, 4))
            if ifd == 0 or ifd in seen:
                break
            seen.add(ifd)
            n, w, h = _tiff_page(src, e, ifd)
            pages.append((w, h))
    differ = any(page != pages[0] for page in pages)
    return Header("tiff", width, height, len(seen), tuple(pages) if differ else ())


def _bmp(src: _Src, count_frames: bool) -> Header | None:
    (size,) = struct.unpack("<I", src.get(14, 4))
    if size not in (12, 40, 52, 56, 64, 108, 124):  # BITMAPCOREHEADER, BITMAPINFOHEADER...
        return None
    info = src.get(18, size - 4)  # the whole info header must be there, not just the sides
    width, height = struct.unpack_from("<HH" if size == 12 else "<ii", info)  # core: 16-bit
    return Header("bmp", width, abs(height), 1)  # negative height: top-down rows


_MAGIC: list[tuple[int, tuple[bytes, ...], Callable[[_Src, bool], Header | None]]] = [
    (0, (b"\x89PNG\r\n\x1a\n",), _png),
    (0, (b"\xff\xd8\xff",), _jpeg),
    (0, (b"GIF87a", b"GIF89a"), _gif),
    (8, (b"WEBP",), _webp),
    (4, (b"ftyp",), _avif),
    (0, (b"II*\x00", b"MM\x00*"), _tiff),
    (0, (b"BM",), _bmp),
]  # (offset, signatures, parser); WebP's leading "RIFF" is checked in _webp


def read_header(
    read: Read, size: int | None = None, count_frames: bool = False, budget: int = 1 << 20
) -> Header | None:
    """Format, stored size and frame count; None when the bytes are not a supported image,
    or the header is malformed, truncated or would cost more than budget bytes to reach.
    Errors raised by read itself propagate: a storage failure is not a verdict on the image.
    """
    src = _Src(read, size, budget)
    try:
        head = src.get(0, 12)
        parse = next((p for at, magics, p in _MAGIC if head.startswith(magics, at)), None)
        found = parse(src, count_frames) if parse else None
    except _Stop:
        return None
    # A zero side means the header lies or defers to later data (JPEG DNL): nothing to price.
    return found if found and found.width > 0 and found.height > 0 and found.frames > 0 else None


def header_of_bytes(data: bytes, count_frames: bool = False) -> Header | None:
    """read_header over an in-memory buffer (already read, so no budget to save)."""
    view = memoryview(data)  # slices without copying
    return read_header(
        lambda off, n: view[off : off + n], len(data), count_frames, budget=max(1 << 20, len(data))
    )
