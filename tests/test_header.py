"""billing.header: sizes from headers only, checked against Pillow as the reference."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import GifImagePlugin, Image

from billing.header import Header, header_of_bytes, read_header
from tests.header_helpers import (
    GENERATED,
    Counting,
    generated_samples,
    gradient,
    pillow_reference,
    save,
    save_all,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    return generated_samples()


@pytest.mark.parametrize("name", GENERATED)
def test_generated_matches_pillow(generated: dict[str, bytes], name: str) -> None:
    if name not in generated:
        pytest.skip("generator unavailable")
    data = generated[name]
    reference = pillow_reference(data)
    assert header_of_bytes(data, count_frames=True) == reference
    reader = Counting(data)
    assert read_header(reader, len(data), count_frames=True) == reference
    size_unknown = Counting(data, strict=False)  # may read past the end, and learn it there
    assert read_header(size_unknown, None, count_frames=True) == reference
    # Without count_frames the size is the same and frames is 1 unless it came for free.
    still = header_of_bytes(data)
    assert still is not None and (still.width, still.height) == (reference.width, reference.height)
    free = name.startswith("apng")
    assert still.frames == (reference.frames if free else 1)


def test_expected_values(generated: dict[str, bytes]) -> None:
    """Spot checks that do not lean on Pillow, so a shared mistake cannot hide."""
    expect = {
        "png-rgb": ("png", 123, 45, 1),
        "apng-3": ("png", 40, 30, 3),
        "jpeg-sof9": ("jpeg", 57, 43, 1),
        "gif-animated-5": ("gif", 40, 30, 5),
        "gif-screen-1x1": ("gif", 40, 30, 1),
        "webp-animated-4": ("webp", 40, 30, 4),
        "avif-sequence-4": ("avif", 40, 30, 4),
        "tiff-3-pages": ("tiff", 40, 30, 3),
        "bmp-top-down": ("bmp", 33, 17, 1),
        "bmp-core-header": ("bmp", 13, 7, 1),
    }
    for name, (fmt, width, height, count) in expect.items():
        assert header_of_bytes(generated[name], count_frames=True) == Header(
            fmt, width, height, count
        ), name
    assert struct.unpack_from("<i", generated["bmp-top-down"], 22)[0] < 0


def test_big_icc_jpeg_reads_little(generated: dict[str, bytes]) -> None:
    data = generated["jpeg-big-icc"]
    assert data.count(b"\xff\xe2") >= 4  # the profile really is split over APP2 segments
    reader = Counting(data)
    assert read_header(reader, len(data)) == Header("jpeg", 64, 48, 1)
    print(f"big-ICC JPEG: read {reader.bytes} of {len(data)} bytes in {reader.calls} calls")
    assert reader.bytes < len(data) / 10


@pytest.mark.parametrize(
    "name",
    [
        "png-rgb",
        "jpeg-exif",
        "gif-animated-5",
        "webp-animated-4",
        "avif-sequence-4",
        "tiff-3-pages",
        "bmp",
    ],
)
def test_stills_read_one_small_request(generated: dict[str, bytes], name: str) -> None:
    data = generated[name]
    reader = Counting(data)
    assert read_header(reader, len(data)) is not None
    assert reader.bytes <= 3 * 4096 and reader.calls <= 3


def test_webp_frame_walk_skips_frame_data() -> None:
    big = [Image.effect_noise((256, 256), 64 + i * 10).convert("RGB") for i in range(4)]
    data = save(big[0], "WEBP", save_all=True, append_images=big[1:], lossless=True)
    reader = Counting(data)
    assert read_header(reader, len(data), count_frames=True) == pillow_reference(data)
    assert reader.bytes < len(data) / 4  # ANMF headers only, not the frame bitstreams


def box(kind: bytes, payload: bytes, large: bool = False) -> bytes:
    if large:  # size == 1: a 64-bit size follows the type
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, flags: int, payload: bytes, large: bool = False) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload, large)


def synthetic_avif(
    ipma_version: int,
    ipma_flags: int,
    with_pitm: bool = True,
    mdat_first: bool = False,
    meta_to_end: bool = False,
) -> bytes:
    """Item 1 is a 1000x1000 image, item 2 (the primary) is 10x20: no AV1 data at all."""
    ispe = [full_box(b"ispe", 0, 0, struct.pack(">II", w, h)) for w, h in ((1000, 1000), (10, 20))]
    colr = box(b"colr", b"nclx" + bytes(7))
    ipco = box(b"ipco", ispe[0] + colr + ispe[1])  # indices 1, 2, 3
    item = ">I" if ipma_version else ">H"
    index = ">H" if ipma_flags & 1 else ">B"
    essential = 0x8000 if ipma_flags & 1 else 0x80
    entries = (
        struct.pack(item, 1)
        + bytes([2])
        + struct.pack(index, 1 | essential)
        + struct.pack(index, 2)
        + struct.pack(item, 2)
        + bytes([2])
        + struct.pack(index, 2)
        + struct.pack(index, 3 | essential)
    )
    ipma = full_box(b"ipma", ipma_version, ipma_flags, struct.pack(">I", 2) + entries)
    pitm = full_box(b"pitm", 0, 0, struct.pack(">H", 2)) if with_pitm else b""
    meta = full_box(
        b"meta",
        0,
        0,
        full_box(b"hdlr", 0, 0, bytes(8) + b"pict" + bytes(13)) + pitm + box(b"iprp", ipco + ipma),
        large=True,
    )
    ftyp = box(b"ftyp", b"avif" + bytes(4) + b"mif1miafavif")
    if meta_to_end:  # size 0: the last box runs to the end of the file
        return ftyp + box(b"mdat", bytes(5000)) + b"\0\0\0\0meta" + meta[16:]
    if mdat_first:
        return ftyp + box(b"mdat", bytes(5000), large=True) + meta
    return ftyp + meta + struct.pack(">I4s", 0, b"mdat") + bytes(5000)  # size 0: to the end


@pytest.mark.parametrize("version,flags", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_avif_primary_item_ispe_via_pitm_and_ipma(version: int, flags: int) -> None:
    for mdat_first in (False, True):
        data = synthetic_avif(version, flags, mdat_first=mdat_first)
        assert header_of_bytes(data) == Header("avif", 10, 20, 1)
        assert read_header(Counting(data, strict=False), None) == Header("avif", 10, 20, 1)
    data = synthetic_avif(version, flags, meta_to_end=True)
    assert header_of_bytes(data) == Header("avif", 10, 20, 1)
    # Without pitm there is no primary to follow: price the largest canvas.
    assert header_of_bytes(synthetic_avif(version, flags, with_pitm=False)) == Header(
        "avif", 1000, 1000, 1
    )


@pytest.mark.parametrize("marker", range(0xC0, 0xD0))
def test_every_sof_marker(marker: int) -> None:
    data = save(gradient("RGB", (57, 43)), "JPEG").replace(b"\xff\xc0", bytes([0xFF, marker]), 1)
    is_sof = marker not in (0xC4, 0xC8, 0xCC)  # DHT, JPG and DAC share the range
    assert header_of_bytes(data) == (Header("jpeg", 57, 43, 1) if is_sof else None)


def test_webp_frame_walk_honours_chunk_padding() -> None:
    """Odd-sized chunks carry a pad byte; miss it and the walk loses its footing."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)

    vp8x = chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + (39).to_bytes(3, "little") * 2)
    frames = [chunk(b"ANMF", bytes([0x41 + i]) * size) for i, size in enumerate((17, 33, 16))]
    body = b"WEBP" + vp8x + chunk(b"ANIM", bytes(6)) + b"".join(frames)
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    assert header_of_bytes(data, count_frames=True) == Header("webp", 40, 40, 3)
    assert header_of_bytes(data) == Header("webp", 40, 40, 1)


def test_gif_canvas_grows_over_later_frames_when_counting() -> None:
    """A later frame outside the logical screen is billed at its full extent."""
    data = bytearray(save_all("GIF", 3))
    data[6:10] = struct.pack("<HH", 40, 30)
    last = data.rindex(b"\x2c\x00\x00\x00\x00")  # an image descriptor at (0, 0)
    struct.pack_into("<HH", data, last + 1, 100, 0)  # move it to x=100
    with Image.open(io.BytesIO(bytes(data))) as im:
        assert isinstance(im, GifImagePlugin.GifImageFile)
        for i in range(im.n_frames):
            im.seek(i)  # Pillow too grows the canvas as it reaches the frame
        assert im.size == (140, 30)
    assert header_of_bytes(bytes(data), count_frames=True) == Header(
        "gif", 140, 30, 3, ((40, 30), (40, 30), (140, 30))
    )
    assert header_of_bytes(bytes(data)) == Header("gif", 40, 30, 1)  # first frame only


def test_budget_is_respected_for_real_files(generated: dict[str, bytes]) -> None:
    data = generated["jpeg-big-icc"]
    reader = Counting(data)
    assert read_header(reader, len(data), budget=8192) is None  # SOF lies past ~5 hops
    assert reader.bytes <= 8192
    reader = Counting(data)
    assert read_header(reader, len(data), budget=100) is None
    assert reader.bytes <= 100
    tiny = generated["bmp"]
    assert read_header(Counting(tiny), len(tiny), budget=64) == Header("bmp", 33, 17, 1)


def test_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, billing.header; heavy = {'PIL', 'numpy', 'cv2'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
