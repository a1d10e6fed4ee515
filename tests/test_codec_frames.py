"""Codec: animations and pages, header limits and broken input, encode options."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jobs.errors import ErrorCode
from tests.codec_helpers import (
    LIMITS,
    asymmetric,
    diff,
    fails_with,
    gradient,
    save,
    swapped_rg_profile,
)
from tests.images import ORIENTATION
from tests.pictures import pic
from worker import codec
from worker.codec import Limits, decode, encode
from worker.picture import Picture

# --- animation, pages -------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
DURATIONS = [100, 200, 300, 400]


def animation(fmt: str, loop: int = 0) -> bytes:
    frames = [Image.new("RGB", (24, 16), colour) for colour in COLOURS]
    options: dict[str, Any] = {"lossless": True} if fmt == "WEBP" else {}
    return save(
        frames[0],
        fmt,
        save_all=True,
        append_images=frames[1:],
        duration=DURATIONS,
        loop=loop,
        **options,
    )


def frame_colours(picture: Picture) -> list[np.ndarray]:
    return [frame[8, 12, :3].astype(int) for frame in picture.frames]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_decode(fmt: str) -> None:
    picture = decode(animation(fmt), LIMITS, animated=True)
    assert len(picture.frames) == 4
    assert all(frame.shape[:2] == (16, 24) for frame in picture.frames)
    for seen, colour in zip(frame_colours(picture), COLOURS, strict=True):
        np.testing.assert_array_equal(seen, colour)
    assert picture.durations == DURATIONS
    assert picture.loop == 0
    assert picture.source["frames"] == 4


@pytest.mark.parametrize("source", ["GIF", "WEBP"])
@pytest.mark.parametrize("target", ["gif", "webp"])
@pytest.mark.parametrize("loop", [0, 3])
def test_animation_round_trip(source: str, target: str, loop: int) -> None:
    """Decode all frames, encode as gif/webp, decode again: frames, timing and loop survive."""
    picture = decode(animation(source, loop), LIMITS, animated=True)
    assert picture.loop == loop
    data = encode(picture, target, 90, None)
    assert Image.open(io.BytesIO(data)).format == target.upper()
    again = decode(data, LIMITS, animated=True)
    assert len(again.frames) == 4
    for seen, colour in zip(frame_colours(again), COLOURS, strict=True):
        assert np.abs(seen - colour).max() <= 8, (seen, colour)
    assert again.durations == DURATIONS  # multiples of 10 ms survive GIF's centiseconds
    assert again.loop == loop


def test_gif_durations_quantised_to_10ms() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in COLOURS]
    data = save(
        frames[0],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[104, 200, 300, 400],
        loop=0,
    )
    picture = decode(data, LIMITS, animated=True)
    again = decode(encode(picture, "gif", 90, None), LIMITS, animated=True)
    assert all(d % 10 == 0 for d in again.durations)
    assert abs(again.durations[0] - 104) < 10 and again.durations[1:] == DURATIONS[1:]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_not_animated_reads_one_page(fmt: str) -> None:
    data = animation(fmt)
    for page, colour in enumerate(COLOURS):
        picture = decode(data, LIMITS, page=page)
        assert len(picture.frames) == 1
        np.testing.assert_array_equal(frame_colours(picture)[0], colour)
        assert picture.durations == [] and picture.loop is None


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_page_out_of_range(fmt: str) -> None:
    message = fails_with(ErrorCode.PAGE_OUT_OF_RANGE, animation(fmt), page=4)
    assert "4" in message
    fails_with(ErrorCode.PAGE_OUT_OF_RANGE, save(gradient(), "PNG"), page=1)


def test_encode_single_frame_formats_keep_the_first_frame() -> None:
    picture = decode(animation("GIF"), LIMITS, animated=True)
    for fmt in ("png", "jpeg"):
        back = decode(encode(picture, fmt, 95, None), LIMITS, animated=True)
        assert len(back.frames) == 1
        assert np.abs(frame_colours(back)[0] - COLOURS[0]).max() <= 8


def test_multipage_tiff_pages() -> None:
    pages = [Image.new("RGB", (10 + 2 * i, 8), colour) for i, colour in enumerate(COLOURS[:3])]
    data = save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    for index, colour in enumerate(COLOURS[:3]):
        picture = decode(data, LIMITS, page=index)
        assert picture.format == "tiff"
        assert picture.first.shape == (8, 10 + 2 * index, 3)
        np.testing.assert_array_equal(picture.first[4, 4], colour)
    fails_with(ErrorCode.PAGE_OUT_OF_RANGE, data, page=3)


# --- limits and broken input ------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG, built with zlib: 81 MP costs ~10 KB of file."""
    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * height, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def test_header_megapixels_over_limit() -> None:
    bomb = bilevel_png(9000, 9000)
    assert len(bomb) < 50_000 and Image.open(io.BytesIO(bomb)).size == (9000, 9000)
    message = fails_with(ErrorCode.IMAGE_TOO_LARGE, bomb, Limits(max_megapixels=50))
    assert "9000x9000" in message


def test_size_checked_before_pixels() -> None:
    """Only the header is read before the size check: a bomb whose pixel data is gone is
    still IMAGE_TOO_LARGE; under a generous limit the same bytes are corrupt."""
    header = bilevel_png(9000, 9000)[:64]  # signature, IHDR and the start of IDAT
    fails_with(ErrorCode.IMAGE_TOO_LARGE, header, Limits(max_megapixels=50))
    small = bilevel_png(2000, 2000)[:64]
    fails_with(ErrorCode.IMAGE_TOO_LARGE, small, Limits(max_megapixels=1))
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, small, Limits(max_megapixels=100))


def test_at_limit_is_allowed() -> None:
    """1000x1000 is exactly 1 MP: within a 1 MP limit."""
    assert decode(bilevel_png(1000, 1000), Limits(max_megapixels=1)).first.shape == (1000, 1000, 3)
    fails_with(ErrorCode.IMAGE_TOO_LARGE, bilevel_png(1001, 1000), Limits(max_megapixels=1))


def test_frames_over_limit() -> None:
    data = animation("GIF")
    fails_with(ErrorCode.IMAGE_TOO_LARGE, data, Limits(max_frames=3), animated=True)
    assert len(decode(data, Limits(max_frames=4), animated=True).frames) == 4
    assert len(decode(data, Limits(max_frames=3)).frames) == 1  # one page is one frame


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        b"GIF89a",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,
        b"<svg></svg>",
        bytes(range(256)) * 4,
    ],
    ids=["empty", "text", "gif-magic-only", "png-magic-only", "svg", "binary-noise"],
)
def test_decode_non_image(data: bytes) -> None:
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_truncated_image(fmt: str) -> None:
    """A real image cut to half its bytes fails (not a partial image)."""
    rng = np.random.default_rng(0)
    data = save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), fmt)
    assert decode(data, LIMITS).first.shape == (64, 64, 3)  # the whole one decodes
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, data[: len(data) // 2])


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("TIFF", "tiff"),
        ("AVIF", "avif"),
    ],
)
def test_decode_reports_format(fmt: str, name: str) -> None:
    picture = decode(save(gradient(8, 8), fmt), LIMITS)
    assert picture.format == name
    assert len(picture.frames) == 1 and picture.first.shape == (8, 8, 3)


def test_decode_bmp() -> None:
    """BMP is accepted (exact pixels); its default output format is one the fleet writes."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    picture = decode(save(pixels, "BMP"), LIMITS)
    np.testing.assert_array_equal(picture.first, pixels)
    assert picture.format in codec.CONTENT_TYPES


# --- encode: formats, quality, no metadata ----------------------------------------------------


@pytest.mark.parametrize(("fmt", "pillow"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("avif", "AVIF")])
def test_lossy_round_trip_close(fmt: str, pillow: str) -> None:
    pixels = gradient()
    data = encode(pic(pixels), fmt, 85, None)
    back = Image.open(io.BytesIO(data))
    assert back.format == pillow and back.size == (64, 48)
    assert diff(decode(data, LIMITS).first, pixels) < 6


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_lower_quality_fewer_bytes(fmt: str) -> None:
    rng = np.random.default_rng(2)
    noisy = pic(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    sizes = [len(encode(noisy, fmt, q, None)) for q in (10, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2], sizes


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_encode_writes_no_metadata(fmt: str) -> None:
    """An input with EXIF (orientation 6) and an ICC profile: the output carries neither and
    its pixels are upright."""
    stored = asymmetric(60, 80)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Camera maker"
    data = save(image, "JPEG", quality=95, exif=exif, icc_profile=swapped_rg_profile())
    picture = decode(data, LIMITS)
    out = Image.open(io.BytesIO(encode(picture, fmt, 95, None)))
    tags = set(out.getexif())
    # orientation, make, the EXIF and GPS sub-IFDs, XMP, IPTC, an embedded ICC profile
    assert not tags & {0x0112, 0x010F, 0x8769, 0x8825, 0x02BC, 0x83BB, 0x8773}, tags
    if fmt != "tiff":  # a TIFF's own structure (size, strips...) lives in the same IFD
        assert not tags
    assert not out.info.get("icc_profile")
    assert "exif" not in out.info
    assert out.size == (60, 80)  # upright: the stored 80x60 turned
