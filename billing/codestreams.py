"""JPEG XL and JPEG 2000 sizes from their codestream headers, naked or in their box
containers (both use ISOBMFF-style boxes after a 12-byte signature box)."""

from __future__ import annotations

import struct

from billing.header_types import Header
from billing.isobmff import boxes, find
from billing.ranged import Src, Stop

_JXL_HEAD = 32  # bytes of codestream that hold the SizeHeader and the orientation, at most
# SizeHeader's U32 distributions: (bits, offset) for each 2-bit selector
_JXL_SIDE = ((9, 1), (13, 1), (18, 1), (30, 1))
# width from height for a non-zero ratio code: (numerator, denominator)
_JXL_RATIO = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


class _Bits:
    """JPEG XL's bit reader: least significant bit first."""

    def __init__(self, data: bytes) -> None:
        self.value, self.size, self.pos = int.from_bytes(data, "little"), 8 * len(data), 0

    def u(self, n: int) -> int:
        if self.pos + n > self.size:
            raise Stop
        bits = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return bits

    def u32(self, dists: tuple[tuple[int, int], ...]) -> int:
        bits, offset = dists[self.u(2)]
        return self.u(bits) + offset


def _jxl_size(code: bytes) -> tuple[int, int]:
    """The presented size from a codestream's start (FF 0A, SizeHeader, ImageMetadata):
    orientations 5-8 transpose, and libjxl and jxl-oxide present the image upright."""
    if code[:2] != b"\xff\x0a":
        raise Stop
    bits = _Bits(code[2:])
    small = bits.u(1)
    height = (bits.u(5) + 1) * 8 if small else bits.u32(_JXL_SIDE)
    ratio = bits.u(3)
    if ratio:
        num, den = _JXL_RATIO[ratio]
        width = height * num // den
    else:
        width = (bits.u(5) + 1) * 8 if small else bits.u32(_JXL_SIDE)
    orientation = 1
    if not bits.u(1) and bits.u(1):  # not all_default, then extra_fields: orientation first
        orientation = bits.u(3) + 1
    return (height, width) if orientation > 4 else (width, height)


def jxl_codestream(src: Src, count_frames: bool) -> Header | None:
    return Header("jxl", *_jxl_size(src.get(0, min(_JXL_HEAD, src.end))), 1)


def jxl_container(src: Src, count_frames: bool) -> Header | None:
    """The codestream is in jxlc, or split over jxlp boxes (each after a 4-byte index)."""
    code = b""
    for typ, body, end in boxes(src, 0, src.end):
        if typ == b"jxlc" or typ == b"jxlp":
            skip = 4 if typ == b"jxlp" else 0
            code += src.get(body + skip, max(0, min(_JXL_HEAD - len(code), end - body - skip)))
            if typ == b"jxlc" or len(code) >= _JXL_HEAD:
                break
    return Header("jxl", *_jxl_size(code), 1)


def _siz(src: Src, off: int) -> tuple[int, int]:
    """Xsiz - XOsiz, Ysiz - YOsiz of the SIZ segment after SOC at off (what OpenJPEG and
    Pillow present)."""
    soc, siz, _, _, xsiz, ysiz, xo, yo = struct.unpack(">HHHHIIII", src.get(off, 24))
    if soc != 0xFF4F or siz != 0xFF51:
        raise Stop
    return xsiz - xo, ysiz - yo


def j2k_codestream(src: Src, count_frames: bool) -> Header | None:
    return Header("jp2", *_siz(src, 0), 1)


def jp2_file(src: Src, count_frames: bool) -> Header | None:
    """JP2/JPX: the image header box (jp2h/ihdr: height, then width), else the codestream."""
    ihdr = find(src, 0, src.end, b"jp2h", b"ihdr")
    if ihdr is not None:
        height, width = struct.unpack(">II", src.get(ihdr[0], 8))
        return Header("jp2", width, height, 1)
    code = find(src, 0, src.end, b"jp2c")
    return Header("jp2", *_siz(src, code[0]), 1) if code else None
