"""Image size from the header alone, so the gateway can quote a price before a job runs.

Never decodes pixels, and reads through a ranged-read callable (inputs live in object
storage, up to the upload limit) within a byte budget (billing/ranged.py). The raster
formats' parsers are here; the others, dispatched by signature, are in their own modules:
AVIF and HEIF (billing/isobmff.py), JPEG XL and JPEG 2000 (billing/codestreams.py), SVG
and PDF (billing/vector_header.py). Standard library only, but for PDFs (PDFium, imported
at the first PDF seen). The budget rules:

- every format reads what its header needs within `budget` bytes (1 MiB) and at most 2048
  requests, except as follows;
- an explicit frame walk (count_frames: GIF, animated WebP and AVIF, TIFF pages) lifts the
  total cap but reads in small pieces;
- SVG reads a bounded prefix, vector_header.SVG_PREFIX (256 KiB): the root tag must end in it;
- PDF reads the whole object, bounded by its size (the caller's object limit); a PDF of
  unknown size is unreadable;
- every walk stops after ranged.MAX_STEPS field reads (2^20, ~0.2 s): past that the input
  is refused (IMAGE_PARSE_FAILED), at submission and by the worker alike, since every
  reader after this one (Pillow's) walks the same blocks more slowly still.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from contextlib import suppress

from billing import codestreams, isobmff, vector_header
from billing.header_types import Header
from billing.ranged import FAR, MAX_STEPS, Exhausted, Read, Src, Stop
from jobs.errors import ErrorCode, FleetError

__all__ = ["Header", "Read", "header_of_bytes", "read_header"]

_SEGMENT_AHEAD = 1024  # JPEG: a few tables per read, ~1 KB per skipped APPn segment
_WALK_AHEAD = 64  # frame walks: room for a chunk or IFD header, never frame data in bulk
_MAX_PAGES = 10_000  # TIFF IFD chains are attacker-controlled
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_Parser = Callable[[Src, bool], Header | None]


def _png(src: Src, count_frames: bool) -> Header | None:
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


def _jpeg(src: Src, count_frames: bool) -> Header | None:
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


def _gif_sub_blocks(src: Src, off: int) -> int:
    while (n := src.get(off, 1)[0]) != 0:
        off += 1 + n
    return off + 1


def _gif(src: Src, count_frames: bool) -> Header | None:
    width, height, flags = struct.unpack("<HHB", src.get(6, 5))
    off, pages = 13 + _gif_table(flags), []
    if count_frames:  # no count in the header: visit every block, reading in big pieces
        src.budget, src.ahead = None, 1 << 16
    with suppress(Stop):  # a cut inside the animation keeps the frames seen
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


def _webp(src: Src, count_frames: bool) -> Header | None:
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
        frames, off, end = 0, 12, min(8 + riff_size, src.size or FAR)
        with suppress(Stop):  # truncated animation: keep the frames seen
            while off + 8 <= end:
                typ, n = struct.unpack("<4sI", src.get(off, 8))
                frames += typ == b"ANMF"
                off += 8 + n + (n & 1)  # chunks are padded to even sizes
    return Header("webp", width, height, frames)


def _tiff_page(src: Src, e: str, ifd: int) -> tuple[int, int, int]:
    """(entry count, width, height) of the IFD at ifd."""
    (n,) = struct.unpack(e + "H", src.get(ifd, 2))
    entries, width, height = src.get(ifd + 2, 12 * n), 0, 0
    for i in range(0, 12 * n, 12):
        tag, typ = struct.unpack_from(e + "HH", entries, i)
        if tag in (256, 257) and typ in (3, 4):  # ImageWidth / ImageLength, SHORT or LONG
            (value,) = struct.unpack_from(e + ("H" if typ == 3 else "I"), entries, i + 8)
            width, height = (value, height) if tag == 256 else (width, value)
    return n, width, height


def _tiff(src: Src, count_frames: bool) -> Header | None:
    e = "<" if src.get(0, 2) == b"II" else ">"
    magic, ifd = struct.unpack(e + "HI", src.get(2, 6))
    if magic != 42:  # 43 is BigTIFF, not supported
        return None
    n, width, height = _tiff_page(src, e, ifd)
    seen, pages = {ifd}, [(width, height)]
    if count_frames:  # frame walk: no total cap, small reads
        src.budget, src.ahead = None, _WALK_AHEAD
    with suppress(Stop):  # follow next-IFD offsets until a bad link; every page's size
        while count_frames and len(seen) < _MAX_PAGES:
            (ifd,) = struct.unpack(e + "I", src.get(ifd + 2 + 12 * n, 4))
            if ifd == 0 or ifd in seen:
                break
            seen.add(ifd)
            n, w, h = _tiff_page(src, e, ifd)
            pages.append((w, h))
    differ = any(page != pages[0] for page in pages)
    return Header("tiff", width, height, len(seen), tuple(pages) if differ else ())


def _bmp(src: Src, count_frames: bool) -> Header | None:
    (size,) = struct.unpack("<I", src.get(14, 4))
    if size not in (12, 40, 52, 56, 64, 108, 124):  # BITMAPCOREHEADER, BITMAPINFOHEADER...
        return None
    info = src.get(18, size - 4)  # the whole info header must be there, not just the sides
    width, height = struct.unpack_from("<HH" if size == 12 else "<ii", info)  # core: 16-bit
    return Header("bmp", width, abs(height), 1)  # negative height: top-down rows


_MAGIC: list[tuple[int, tuple[bytes, ...], _Parser]] = [
    (0, (b"\x89PNG\r\n\x1a\n",), _png),
    (0, (b"\xff\xd8\xff",), _jpeg),
    (0, (b"GIF87a", b"GIF89a"), _gif),
    (8, (b"WEBP",), _webp),
    (4, (b"ftyp",), isobmff.heif_still),  # AVIF or HEIF/HEIC
    (0, (b"II*\x00", b"MM\x00*"), _tiff),
    (0, (b"BM",), _bmp),
    (0, (b"\xff\x0a",), codestreams.jxl_codestream),
    (0, (b"\x00\x00\x00\x0cJXL \r\n\x87\n",), codestreams.jxl_container),
    (0, (b"\xff\x4f\xff\x51",), codestreams.j2k_codestream),
    (0, (b"\x00\x00\x00\x0cjP  \r\n\x87\n",), codestreams.jp2_file),
    (0, (b"%PDF-",), vector_header.pdf),
]  # (offset, signatures, parser); WebP's leading "RIFF" is checked in _webp


def _sniff(src: Src) -> _Parser | None:
    """The parser for the first bytes: by signature; else PDF if its marker is in the first
    KiB (PDFium allows junk before it); else SVG for what may be XML (a byte order mark,
    white space or "<" first)."""
    head = src.get(0, min(12, src.end))
    parse = next((p for at, magics, p in _MAGIC if head.startswith(magics, at)), None)
    if parse is None and b"%PDF-" in src.prefix(1024):
        return vector_header.pdf
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return parse or (vector_header.svg if text[:1] in (b"", b"<") else None)


def read_header(
    read: Read, size: int | None = None, count_frames: bool = False, budget: int = 1 << 20
) -> Header | None:
    """Format, stored size and frame count; None when the bytes are not a supported image,
    or the header is malformed, truncated or would cost more than budget bytes to reach.
    Errors raised by read itself propagate: a storage failure is not a verdict on the image.
    A walk of more than MAX_STEPS reads raises FleetError IMAGE_PARSE_FAILED.
    """
    src = Src(read, size, budget)
    try:
        parse = _sniff(src)
        found = parse(src, count_frames) if parse else None
    except Stop:
        return None
    except Exhausted:
        raise FleetError(
            ErrorCode.IMAGE_PARSE_FAILED,
            f"the input's header takes over {MAX_STEPS:,} reads to walk (a GIF or WebP of"
            " millions of tiny blocks, a JPEG of fill bytes); no image of this fleet's needs"
            " that many",
        ) from None
    # A zero side means the header lies or defers to later data (JPEG DNL): nothing to price.
    return found if found and found.width > 0 and found.height > 0 and found.frames > 0 else None


def header_of_bytes(data: bytes, count_frames: bool = False) -> Header | None:
    """read_header over an in-memory buffer (already read, so no budget to save)."""
    view = memoryview(data)  # slices without copying
    return read_header(
        lambda off, n: view[off : off + n], len(data), count_frames, budget=max(1 << 20, len(data))
    )
