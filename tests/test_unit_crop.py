"""Crop geometry (worker.ops.crop) against independent numpy computations, and EXIF orientation."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.crop import CropJob
from jobs.errors import ErrorCode, FleetError
from jobs.registry import decode_spec
from tests import images
from worker.codec import Limits, decode
from worker.ops.crop import crop
from worker.picture import Picture

CFG = load_settings()  # the handlers' third argument


def job(**fields: Any) -> CropJob:
    """A CropJob decoded from JSON, so it passed the same validation as a real request."""
    spec = decode_spec(json.dumps({"operation": "crop", "input": "in.png", **fields}).encode())
    assert isinstance(spec, CropJob)
    return spec


def run(pixels: np.ndarray, spec: CropJob) -> tuple[np.ndarray, dict[str, int]]:
    """Crop a numpy image; return the output pixels and the reported rectangle."""
    grey = pixels.ndim == 2
    frame = np.repeat(pixels[:, :, None], 3, axis=2) if grey else pixels
    result = crop([Picture(frames=[frame], format="png")], spec, CFG)
    assert result.picture is not None
    out = result.picture.first
    return (out[:, :, 0] if grey else out), result.fields["crop"]


def random_image(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def box(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "width": w, "height": h}


# --- rect -------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("seed", range(12))
def test_rect_matches_numpy_slice(seed: int, channels: int) -> None:
    """A random rect inside a random image equals the numpy slice of that rect."""
    rng = np.random.default_rng(seed)
    ih, iw = (int(v) for v in rng.integers(1, 40, 2))
    w, h = int(rng.integers(1, iw + 1)), int(rng.integers(1, ih + 1))
    x, y = int(rng.integers(0, iw - w + 1)), int(rng.integers(0, ih - h + 1))
    pixels = random_image(rng, ih, iw, channels)
    out, reported = run(pixels, job(rect=box(x, y, w, h)))
    np.testing.assert_array_equal(out, pixels[y : y + h, x : x + w])
    assert reported == box(x, y, w, h)


def test_rect_touching_bottom_right_edge() -> None:
    """A rect ending exactly at the image's right and bottom edges is allowed."""
    pixels = random_image(np.random.default_rng(99), 9, 13)
    out, reported = run(pixels, job(rect=box(5, 4, 8, 5)))
    np.testing.assert_array_equal(out, pixels[4:9, 5:13])
    assert reported == box(5, 4, 8, 5)


@pytest.mark.parametrize(
    "rect",
    [
        box(6, 0, 8, 5),
        box(0, 5, 13, 5),
        box(13, 0, 1, 1),
        box(0, 9, 1, 1),
        box(0, 0, 14, 9),
        box(0, 0, 13, 10),
        box(2**32 - 1, 0, 1, 1),
    ],
)
def test_rect_out_of_bounds(rect: dict[str, int]) -> None:
    """A rect reaching past any edge of a 13x9 image fails with CROP_OUT_OF_BOUNDS."""
    pixels = random_image(np.random.default_rng(1), 9, 13)
    with pytest.raises(FleetError) as info:
        run(pixels, job(rect=rect))
    assert info.value.code is ErrorCode.CROP_OUT_OF_BOUNDS


# --- center and focal point -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iw", "ih", "w", "h", "x", "y"),
    [
        (10, 10, 4, 4, 3, 3),
        (11, 7, 4, 4, 3, 1),
        (12, 9, 5, 2, 3, 3),
        (5, 5, 5, 5, 0, 0),
        (8, 3, 1, 3, 3, 0),
        (1, 20, 1, 7, 0, 6),
    ],
)
def test_center_window(iw: int, ih: int, w: int, h: int, x: int, y: int) -> None:
    """center puts the window at floor((image - window) / 2) on each axis."""
    pixels = random_image(np.random.default_rng(iw * 100 + ih), ih, iw)
    out, reported = run(pixels, job(gravity="center", width=w, height=h))
    assert reported == box(x, y, w, h)
    np.testing.assert_array_equal(out, pixels[y : y + h, x : x + w])


# Hand-derived on a 40x30 image with a 10x8 window: x = clamp(round(fx*40 - 5), 0, 30),
# y = clamp(round(fy*30 - 4), 0, 22). None of these sits on a .5 rounding tie.
FOCAL_CASES = [
    (0.0, 0.0, 0, 0),  # top-left corner: clamped left and top
    (1.0, 1.0, 30, 22),  # bottom-right corner: clamped right and bottom
    (0.0, 1.0, 0, 22),  # bottom-left
    (1.0, 0.0, 30, 0),  # top-right
    (0.5, 0.5, 15, 11),
    (0.25, 0.8, 5, 20),
    (0.1, 0.9, 0, 22),  # ideal x = -1 -> 0; ideal y = 23 -> 22
    (0.3, 0.3, 7, 5),
    (0.33, 0.6, 8, 14),  # 8.2 -> 8
    (0.37, 0.17, 10, 1),  # 9.8 -> 10; 1.1 -> 1
    (0.95, 0.05, 30, 0),  # ideal x = 33 -> 30; ideal y = -2.5 -> 0
]


@pytest.mark.parametrize(("fx", "fy", "x", "y"), FOCAL_CASES)
def test_focal_point_window(fx: float, fy: float, x: int, y: int) -> None:
    """focal_point centres the window on the focal point, clamped inside the image."""
    pixels = random_image(np.random.default_rng(7), 30, 40)
    out, reported = run(
        pixels, job(gravity="focal_point", width=10, height=8, focal_x=fx, focal_y=fy)
    )
    assert reported == box(x, y, 10, 8)
    np.testing.assert_array_equal(out, pixels[y : y + 8, x : x + 10])


def _check_axis(start: int, size: int, window: int, focal: float) -> None:
    ideal = focal * size - window / 2  # left/top edge of the window centred on the focal point
    assert 0 <= start <= size - window
    if ideal <= 0:
        assert start == 0
    elif ideal >= size - window:
        assert start == size - window
    else:
        assert abs(start - ideal) <= 0.5


@pytest.mark.parametrize("seed", range(40))
def test_focal_point_random(seed: int) -> None:
    """Random sizes and focal points: nearest centred window, or flush against the edge."""
    rng = np.random.default_rng(1000 + seed)
    ih, iw = (int(v) for v in rng.integers(1, 60, 2))
    w, h = int(rng.integers(1, iw + 1)), int(rng.integers(1, ih + 1))
    fx, fy = (float(v) for v in rng.random(2))
    pixels = random_image(rng, ih, iw)
    out, reported = run(
        pixels, job(gravity="focal_point", width=w, height=h, focal_x=fx, focal_y=fy)
    )
    _check_axis(reported["x"], iw, w, fx)
    _check_axis(reported["y"], ih, h, fy)
    assert (reported["width"], reported["height"]) == (w, h)
    x, y = reported["x"], reported["y"]
    np.testing.assert_array_equal(out, pixels[y : y + h, x : x + w])


# --- entropy ----------------------------------------------------------------------------------


def brute_force_origin(luma: np.ndarray, w: int, h: int) -> tuple[int, int]:
    """Top-left of the highest-variance window; ties (within float noise) -> top-most, left-most.

    Exact variances of integer windows differ by at least 1/n^2 (n = w*h), far above np.var's
    rounding error, so a tolerance of 0.25/n^2 separates real differences from noise.
    """
    ih, iw = luma.shape
    values = luma.astype(np.float64)
    var = np.array(
        [
            [np.var(values[y : y + h, x : x + w]) for x in range(iw - w + 1)]
            for y in range(ih - h + 1)
        ]
    )
    tolerance = 0.25 / float(w * h) ** 2
    ys, xs = np.nonzero(var >= var.max() - tolerance)
    return int(xs[0]), int(ys[0])  # np.nonzero is row-major: top-most, then left-most


@pytest.mark.parametrize("seed", range(60))
def test_entropy_matches_brute_force(seed: int) -> None:
    """On random grayscale images the chosen window is the brute-force highest-variance one."""
    rng = np.random.default_rng(5000 + seed)
    ih, iw = (int(v) for v in rng.integers(1, 18, 2))
    w, h = int(rng.integers(1, iw + 1)), int(rng.integers(1, ih + 1))
    pixels = random_image(rng, ih, iw, channels=1)
    out, reported = run(pixels, job(gravity="entropy", width=w, height=h))
    x, y = brute_force_origin(pixels, w, h)
    assert reported == box(x, y, w, h)
    np.testing.assert_array_equal(out, pixels[y : y + h, x : x + w])


@pytest.mark.parametrize("seed", range(10))
def test_entropy_on_rgb_uses_luma(seed: int) -> None:
    """RGB images are scored on ITU-R 601 luma (Pillow's integer formula, computed here)."""
    rng = np.random.default_rng(7000 + seed)
    ih, iw = (int(v) for v in rng.integers(2, 16, 2))
    w, h = int(rng.integers(1, iw + 1)), int(rng.integers(1, ih + 1))
    pixels = random_image(rng, ih, iw)
    rgb = pixels.astype(np.int64)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    out, reported = run(pixels, job(gravity="entropy", width=w, height=h))
    x, y = brute_force_origin(luma, w, h)
    assert reported == box(x, y, w, h)
    np.testing.assert_array_equal(out, pixels[y : y + h, x : x + w])


@pytest.mark.parametrize(("w", "h"), [(1, 1), (3, 2), (7, 5), (10, 6)])
def test_entropy_constant_image_picks_top_left(w: int, h: int) -> None:
    """Every window of a constant image ties at variance 0: the top-left one wins."""
    pixels = np.full((6, 10, 3), 77, dtype=np.uint8)
    _, reported = run(pixels, job(gravity="entropy", width=w, height=h))
    assert reported == box(0, 0, w, h)


def _checker_patches(origins: list[tuple[int, int]]) -> np.ndarray:
    """A mid-grey 30x30 image with identical 4x4 black/white checkerboards at `origins`."""
    pixels = np.full((30, 30), 128, dtype=np.uint8)
    patch = np.where((np.indices((4, 4)).sum(axis=0) % 2) == 0, 0, 255).astype(np.uint8)
    for x, y in origins:
        pixels[y : y + 4, x : x + 4] = patch
    return pixels


@pytest.mark.parametrize(
    ("origins", "winner"),
    [
        ([(20, 3), (2, 15)], (20, 3)),  # top-most wins even though it is further right
        ([(2, 15), (20, 3)], (20, 3)),  # insertion order does not matter
        ([(18, 10), (3, 10)], (3, 10)),  # same row: left-most wins
        ([(25, 25), (10, 20), (12, 2)], (12, 2)),
    ],
)
def test_entropy_identical_patches_tie(
    origins: list[tuple[int, int]], winner: tuple[int, int]
) -> None:
    """Two identical maximal-variance patches: the top-most, then left-most, is chosen."""
    pixels = _checker_patches(origins)
    assert brute_force_origin(pixels, 4, 4) == winner  # the fixture really has this answer
    out, reported = run(pixels, job(gravity="entropy", width=4, height=4))
    assert reported == box(*winner, 4, 4)
    np.testing.assert_array_equal(out, pixels[winner[1] : winner[1] + 4, winner[0] : winner[0] + 4])


@pytest.mark.parametrize(
    ("pixels", "w", "h"),
    [
        (np.array([[112, 111, 112, 111]], dtype=np.uint8), 3, 1),
        (np.array([[112], [111], [112], [111]], dtype=np.uint8), 1, 3),
    ],
)
def test_entropy_equal_variance_tie(pixels: np.ndarray, w: int, h: int) -> None:
    """[112,111,112] and [111,112,111] both have variance 2/9: a tie, so the first must win.

    Float E[L^2] - mean^2 rounds these two differently; the score must be exact.
    """
    assert brute_force_origin(pixels, w, h) == (0, 0)
    _, reported = run(pixels, job(gravity="entropy", width=w, height=h))
    assert reported == box(0, 0, w, h)


@pytest.mark.parametrize("gravity", ["center", "focal_point", "entropy"])
@pytest.mark.parametrize(("w", "h"), [(13, 1), (1, 10), (14, 10), (100, 100)])
def test_window_larger_than_image(gravity: str, w: int, h: int) -> None:
    """A window wider or taller than the 12x9 image fails with CROP_OUT_OF_BOUNDS."""
    pixels = random_image(np.random.default_rng(3), 9, 12)
    with pytest.raises(FleetError) as info:
        run(pixels, job(gravity=gravity, width=w, height=h))
    assert info.value.code is ErrorCode.CROP_OUT_OF_BOUNDS


@pytest.mark.parametrize("gravity", ["center", "focal_point", "entropy"])
def test_window_equal_to_image(gravity: str) -> None:
    """A window exactly the image's size returns the whole image at (0, 0)."""
    pixels = random_image(np.random.default_rng(4), 9, 12)
    out, reported = run(pixels, job(gravity=gravity, width=12, height=9, focal_x=1, focal_y=0))
    assert reported == box(0, 0, 12, 9)
    np.testing.assert_array_equal(out, pixels)


# --- EXIF orientation -------------------------------------------------------------------------

ORIENTED = {  # how the stored pixels must be transformed to display upright
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontally
    3: lambda a: np.rot90(a, 2),  # rotate 180
    4: lambda a: a[::-1, :],  # mirror vertically
    5: lambda a: np.swapaxes(a, 0, 1),  # transpose
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transverse
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
}


def with_orientation(pixels: np.ndarray, orientation: int, fmt: str) -> bytes:
    return images.encode(pixels, fmt, orientation, **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_exif_orientation_png_exact(orientation: int) -> None:
    """A PNG with EXIF orientation decodes to the stored pixels turned upright, exactly."""
    pixels = random_image(np.random.default_rng(orientation), 5, 8)
    decoded = decode(with_orientation(pixels, orientation, "PNG"), Limits(100))
    np.testing.assert_array_equal(decoded.first, ORIENTED[orientation](pixels))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg(orientation: int) -> None:
    """A JPEG decodes to its raw (stored) pixels turned upright by the EXIF orientation."""
    pixels = random_image(np.random.default_rng(20 + orientation), 16, 24)
    data = with_orientation(pixels, orientation, "JPEG")
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # raw decode, no rotation
    upright = decode(data, Limits(100)).first
    assert upright.shape[:2] == ((24, 16) if orientation in (6, 8) else (16, 24))
    np.testing.assert_array_equal(upright, ORIENTED[orientation](stored))


def test_rect_applies_to_upright_image() -> None:
    """After orientation 6 a 8x5 stored image is 5 wide and 8 tall; rects use that geometry."""
    pixels = random_image(np.random.default_rng(11), 5, 8)
    picture = decode(with_orientation(pixels, 6, "PNG"), Limits(100))
    upright = np.rot90(pixels, -1)
    result = crop([picture], job(rect=box(1, 3, 4, 5)), CFG)
    assert result.picture is not None
    np.testing.assert_array_equal(result.picture.first, upright[3:8, 1:5])
    with pytest.raises(FleetError) as info:
        crop([picture], job(rect=box(0, 0, 8, 5)), CFG)  # fits the stored size, not the upright one
    assert info.value.code is ErrorCode.CROP_OUT_OF_BOUNDS
