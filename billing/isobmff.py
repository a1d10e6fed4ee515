"""AVIF and HEIF/HEIC stills from their ISOBMFF boxes: the primary item's ispe, never the
coded data. One walk serves both, since both are HEIF files (ftyp, meta/iinf/iprp) and an
AVIF file may carry the same structural brands (mif1, miaf) as a HEIC one: the major
brand tells them apart, else the primary item's type (av01 or hvc1), else the brands."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import suppress

from billing.header_types import Header
from billing.ranged import Src, Stop

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_STRUCTURAL = {b"mif1", b"msf1", b"mif2", b"miaf"}  # "a HEIF file": the codec is in the items
_AV1, _HEVC = {b"av01"}, {b"hvc1", b"hev1"}


def boxes(src: Src, off: int, end: int) -> Iterator[tuple[bytes, int, int]]:
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
            raise Stop
        yield typ, body, off + size
        off += size


def find(src: Src, off: int, end: int, *path: bytes) -> tuple[int, int] | None:
    """Payload range of the first box along path, e.g. meta/iprp/ipco."""
    for want in path:
        for typ, body, box_end in boxes(src, off, end):
            if typ == want:
                off, end = body + (4 if want == b"meta" else 0), box_end  # meta is a FullBox
                break
        else:
            return None
    return off, end


def _ipma(data: bytes, item: int) -> list[int]:
    """1-based ipco indices of the properties that ipma associates with item, in order."""
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


def _item_type(src: Src, meta: tuple[int, int], item: int) -> bytes | None:
    """The 4cc type of item from iinf (infe version 2 and 3 name it)."""
    iinf = find(src, *meta, b"iinf")
    if iinf is None:
        return None
    first = iinf[0] + (6 if src.get(iinf[0], 1)[0] == 0 else 8)  # FullBox, then entry count
    for typ, body, _ in boxes(src, first, iinf[1]):
        version = src.get(body, 1)[0]
        if typ == b"infe" and version in (2, 3):
            id_size = 2 if version == 2 else 4
            item_id = int.from_bytes(src.get(body + 4, id_size), "big")
            if item_id == item:
                return src.get(body + 4 + id_size + 2, 4)  # after the protection index
    return None


def _clap(data: bytes) -> tuple[int, int]:
    """The clean aperture's size (libheif rounds half up)."""
    wn, wd, hn, hd = struct.unpack_from(">IIII", data)
    if not wd or not hd or not wn or not hn:
        raise Stop
    return (2 * wn + wd) // (2 * wd), (2 * hn + hd) // (2 * hd)


def _kind(kinds: set[bytes], major: bytes, primary_type: bytes | None) -> str | None:
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        return "heif"
    if primary_type in _AV1 or primary_type in _HEVC:
        return "avif" if primary_type in _AV1 else "heif"
    if kinds & _AVIF_BRANDS:
        return "avif"
    return "heif" if kinds & (_HEIF_BRANDS | _STRUCTURAL) else None


def heif_still(src: Src, count_frames: bool) -> Header | None:
    """AVIF: the stored size (Pillow presents irot/imir as EXIF orientation). HEIF: the
    size pillow-heif presents, the primary item's ispe through its clap and irot in ipma
    order (imir keeps the size); one frame, the primary image."""
    top = src.end
    typ, body, off = next(boxes(src, 0, top))
    if typ != b"ftyp":
        return None
    brands = src.get(body, min(off - body, 256))  # major, minor version, compatible...
    major, compatible = brands[:4], brands[:4] + brands[8:]  # the major brand counts too
    kinds = {compatible[i : i + 4] for i in range(0, len(compatible), 4)}
    meta = find(src, off, top, b"meta")
    ipco = find(src, *meta, b"iprp", b"ipco") if meta else None
    if not meta or not ipco:
        return None
    props: dict[int, tuple[bytes, int, int]] = {}  # ipco index -> (type, body, end)
    for i, (typ, body, end) in enumerate(boxes(src, *ipco), 1):
        if typ in (b"ispe", b"irot", b"clap"):
            props[i] = (typ, body, end)
    spes = {
        i: struct.unpack(">II", src.get(at + 4, 8))
        for i, (t, at, _) in props.items()
        if t == b"ispe"
    }
    sides = sorted(spes.values(), key=lambda s: s[0] * s[1]) or [(0, 0)]  # fallback: largest
    pitm, ipma = find(src, *meta, b"pitm"), find(src, *meta, b"iprp", b"ipma")
    primary, order = None, []
    if pitm and ipma:  # the primary item's own ispe wins (a grid has one for the whole canvas)
        primary = int.from_bytes(src.get(pitm[0] + 4, 4 if src.get(pitm[0], 1)[0] else 2), "big")
        order = _ipma(src.get(ipma[0], ipma[1] - ipma[0]), primary)
        sides += [spes[i] for i in reversed(order) if i in spes]
    kind = _kind(kinds, major, _item_type(src, meta, primary) if primary else None)
    width, height = sides[-1]
    if kind == "heif":
        for i in order:  # transformative properties, applied in the order ipma lists them
            typ, body, end = props.get(i, (b"", 0, 0))
            if typ == b"clap":
                width, height = _clap(src.get(body, 16))
            elif typ == b"irot" and src.get(body, 1)[0] & 1:  # 90 or 270 degrees
                width, height = height, width
        return Header("heif", width, height, 1)
    if kind != "avif":
        return None
    frames = 1
    if count_frames and b"avis" in kinds:
        src.budget = None  # frame walk: no total cap; box headers only, mdat is skipped
        with suppress(Stop):  # image sequence: sample count of the first track
            stsz = find(src, off, top, b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsz")
            frames = struct.unpack(">I", src.get(stsz[0] + 8, 4))[0] if stsz else 1
    return Header("avif", width, height, frames)
