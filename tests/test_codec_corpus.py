"""Codec: every shared corpus image decodes as SOURCES.md describes, or fails with its code."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.errors import ErrorCode
from tests.codec_helpers import (
    LIMITS,
    diff,
    fails_with,
    needs_corpus,
)
from tests.images import CORPUS
from worker.codec import decode

# --- the shared corpus ------------------------------------------------------------------------

# file -> (width, height upright, frames) or the error it must fail with; from SOURCES.md.
CORPUS_EXPECTED: dict[str, tuple[int, int, int] | ErrorCode] = {
    "2569067123_aca715a2ee_o.jpg": (2725, 2225, 1),
    "4.webp": (1024, 772, 1),
    "Channel_digital_image_CMYK_color.jpg": (500, 333, 1),
    "Channel_digital_image_CMYK_color_no_profile.jpg": (500, 333, 1),
    "G31D.TIF": (2464, 3248, 1),
    "Landscape_1.jpg": (600, 450, 1),
    "Landscape_3.jpg": (600, 450, 1),
    "Landscape_6.jpg": (600, 450, 1),
    "Portrait_6.jpg": (450, 600, 1),
    "blackbug.png": (2048, 1536, 1),
    "giant-image.jpg": ErrorCode.IMAGE_TOO_LARGE,
    "icc_profile_big.jpg": (425, 250, 1),
    "pitm.avif": (4096, 800, 1),
    "rotating-squares.gif": (80, 80, 30),
    "rotating-squares.webp": (80, 80, 9),
    "tbgn2c16.png": (32, 32, 1),
    "truncated.jpg": ErrorCode.IMAGE_PARSE_FAILED,
    "uncompressed_tiff.tiff": (246, 345, 1),
    "animated-loop-3.webp": (370, 285, 10),
    "embedgravitybird.png": (576, 384, 1),
    "face-kit_with_rose.jpg": (501, 700, 1),
    "face-two_people.jpg": (1126, 661, 1),
    # Vector inputs at 72 dpi (their declared size; circle.svg: its 8x8 viewBox), the first
    # page of the PDF, and the HEIC and JPEG XL files as their headers give them.
    "circle.svg": (8, 8, 1),
    "imagor-test.svg": (620, 472, 1),
    "imagor-sample.pdf": (612, 792, 1),
    "jxl-isobmff.jxl": (640, 416, 1),
    "thumbor-image.heic": (256, 256, 1),
}


@needs_corpus
def test_corpus_is_fully_listed() -> None:
    """Every corpus image has an expected outcome here (a new file must be added)."""
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".md"}
    assert files == set(CORPUS_EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_file(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    expected = CORPUS_EXPECTED[name]
    if isinstance(expected, ErrorCode):
        fails_with(expected, data)
        return
    width, height, frames = expected
    picture = decode(data, LIMITS, animated=True)
    assert (picture.width, picture.height) == (width, height)
    assert len(picture.frames) == frames
    for frame in picture.frames:
        assert frame.shape[:2] == (height, width) and frame.shape[2] in (3, 4)
        assert frame.dtype in (np.uint8, np.uint16)
        assert frame.max() > frame.min()  # not a blank decode


@needs_corpus
def test_corpus_landscapes_show_the_same_picture() -> None:
    """The Landscape_N files are one photo stored N ways: upright, they match."""
    shown = {
        n: decode((CORPUS / f"Landscape_{n}.jpg").read_bytes(), LIMITS).first for n in (1, 3, 6)
    }
    assert diff(shown[1], shown[3]) < 10 and diff(shown[3], shown[6]) < 10
    assert diff(shown[1], shown[6]) < 10
    assert diff(shown[1], shown[3][::-1, ::-1]) > 20  # the metric does tell wrong turns apart


@needs_corpus
def test_corpus_special_files() -> None:
    bug = decode((CORPUS / "blackbug.png").read_bytes(), LIMITS).first
    assert bug.shape[2] == 4 and bug[:, :, 3].min() < 255
    deep = decode((CORPUS / "tbgn2c16.png").read_bytes(), LIMITS)
    assert deep.first.dtype == np.uint16 and deep.source["bit_depth"] == 16
    gif = decode((CORPUS / "rotating-squares.gif").read_bytes(), LIMITS, animated=True)
    assert gif.durations == [30] * 30 and gif.loop == 0
    webp = decode((CORPUS / "rotating-squares.webp").read_bytes(), LIMITS, animated=True)
    assert webp.loop == 0 and len(webp.durations) == 9 and min(webp.durations) > 0
    giant = fails_with(ErrorCode.IMAGE_TOO_LARGE, (CORPUS / "giant-image.jpg").read_bytes())
    assert "20000x14000" in giant
