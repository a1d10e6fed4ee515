"""Header reading of real-world files and of layouts decoders accept (APPn chains, junk
bytes, TIFF pages): what the quote reads must be what the decoder reads."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from billing.header import Header, header_of_bytes, read_header
from tests.header_helpers import Counting, gradient, pillow_reference, save
from tests.images import CORPUS

# ---------------------------------------------------------------- shared corpus

READ_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".tif", ".tiff", ".bmp"}
CORPUS_FILES = (
    sorted(p for p in CORPUS.glob("*") if p.suffix.lower() in READ_SUFFIXES)
    if CORPUS.is_dir()
    else []
)


@pytest.mark.skipif(not CORPUS_FILES, reason="shared corpus absent")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_matches_pillow(path: Path) -> None:
    data = path.read_bytes()
    reference = pillow_reference(data)
    reader = Counting(data)
    assert read_header(reader, len(data), count_frames=True) == reference
    still_reader = Counting(data)
    still = read_header(still_reader, len(data))
    assert still is not None and (still.width, still.height) == (reference.width, reference.height)
    assert still_reader.bytes <= 1 << 20


@pytest.mark.skipif(not (CORPUS / "giant-image.jpg").exists(), reason="shared corpus absent")
def test_corpus_giant_and_truncated() -> None:
    giant = Counting((CORPUS / "giant-image.jpg").read_bytes())
    assert read_header(giant, len(giant.data)) == Header("jpeg", 20000, 14000, 1)
    assert giant.bytes <= 4096  # the decompression bomb is priced from one small read
    truncated = (CORPUS / "truncated.jpg").read_bytes()
    assert len(truncated) == 10000
    assert header_of_bytes(truncated) == Header("jpeg", 2725, 2225, 1)


# ---------------------------------------------------------------- layouts decoders accept


def jpeg_with(before_frame: bytes, size: tuple[int, int] = (90, 60)) -> bytes:
    """A real JPEG with extra bytes inserted right after its APP0 segment."""
    data = save(gradient("L", size), "JPEG")
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:app0_end] + before_frame + data[app0_end:]


def test_hundreds_of_app_segments_before_the_frame_header() -> None:
    data = jpeg_with(b"".join(b"\xff\xe9\xff\xfe" + bytes(0xFFFC) for _ in range(260)))
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (90, 60)  # the decoder reads it: so must the quote
    reader = Counting(data)
    assert read_header(reader, len(data)) == Header("jpeg", 90, 60, 1)
    assert reader.bytes <= 1 << 20 and reader.calls <= 300


@pytest.mark.parametrize("junk", [b"\x00", b"\x17\x42", b"\xff\x00", b"\xff\xff\xff"])
def test_junk_and_fill_bytes_before_a_marker(junk: bytes) -> None:
    data = jpeg_with(junk)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.size == (90, 60)
    assert header_of_bytes(data) == Header("jpeg", 90, 60, 1)


def test_every_tiff_page_has_its_own_size() -> None:
    pages = [gradient("RGB", (1, 1)), gradient("RGB", (90, 70)), gradient("RGB", (30, 20))]
    data = save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    header = header_of_bytes(data, count_frames=True)
    assert header == pillow_reference(data)
    assert header is not None and header.page_size(1) == (90, 70)
    assert header.largest() == (90, 70)
    assert header_of_bytes(data) == Header("tiff", 1, 1, 1)  # no walk: the first page only


# ---------------------------------------------------------------- budget


def test_budget_stops_a_huge_app_segment_chain() -> None:
    """A 50 MB 'JPEG' that is nothing but APP1 segments: give up at the budget."""
    size, seg = 50 * 1024 * 1024, b"\xff\xe1\xff\xff" + bytes(0xFFFF - 2)

    def virtual(off: int, n: int) -> bytes:
        out = bytearray()
        for pos in range(off, min(off + n, size)):
            out.append(0xD8 if pos == 1 else 0xFF if pos == 0 else seg[(pos - 2) % len(seg)])
        return bytes(out)

    calls: list[int] = []

    def read(off: int, n: int) -> bytes:
        calls.append(n)
        return virtual(off, n)

    assert read_header(read, size) is None
    assert sum(calls) <= 1 << 20 and len(calls) <= 2048
    calls.clear()
    assert read_header(read, size, budget=64 * 1024) is None
    assert sum(calls) <= 64 * 1024
