"""Geometry ops (resize, rotate, trim, extend) against independent numpy expectations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from imagefleet.settings import load_settings
from jobs.geometry import ExtendJob, ResizeJob, RotateJob, TrimJob
from jobs.spec import RGBA
from tests import images
from tests.pictures import pic, solid
from worker.ops.extend import extend
from worker.ops.resize import resize
from worker.ops.rotate import rotate
from worker.ops.trim import trim

CFG = load_settings()  # the handlers' third argument

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(h: int = 40, w: int = 60) -> np.ndarray:
    """Top-left red, top-right green, bottom-left blue, bottom-right white."""
    out = solid(h, w, RED)
    out[: h // 2, w // 2 :], out[h // 2 :, : w // 2], out[h // 2 :, w // 2 :] = GREEN, BLUE, WHITE
    return out


def near(x: float) -> int:
    return max(1, int(math.floor(x + 0.5)))


def run_resize(frame: np.ndarray, **fields: Any) -> np.ndarray:
    out = resize([pic(frame)], ResizeJob(input="x.png", **fields), CFG).picture
    assert out is not None
    return out.first


# --- resize: dimensions -------------------------------------------------------------------------

SIZES = [(100, 50), (50, 100), (37, 91), (640, 480), (1, 300)]
BOXES = [(60, 60), (30, 200), (250, 17), (123, 45)]


@pytest.mark.parametrize("iw,ih", SIZES)
@pytest.mark.parametrize("bw,bh", BOXES)
@pytest.mark.parametrize("fit", ["cover", "contain", "fill", "inside", "outside"])
def test_resize_dimensions(iw: int, ih: int, bw: int, bh: int, fit: str) -> None:
    out = run_resize(solid(ih, iw, RED), width=bw, height=bh, fit=fit)
    if fit in ("cover", "contain", "fill"):
        expected = (bw, bh)
    else:
        scale = (min if fit == "inside" else max)(bw / iw, bh / ih)
        expected = (near(iw * scale), near(ih * scale))
        inside = expected[0] <= bw and expected[1] <= bh
        assert inside if fit == "inside" else (expected[0] >= bw and expected[1] >= bh)
    assert (out.shape[1], out.shape[0]) == expected


@pytest.mark.parametrize("fit", ["cover", "contain", "fill", "inside", "outside"])
def test_resize_one_dimension_keeps_aspect(fit: str) -> None:
    frame = solid(30, 80, BLUE)
    assert run_resize(frame, width=20, fit=fit).shape[:2] == (near(30 * 20 / 80), 20)
    assert run_resize(frame, height=45, fit=fit).shape[:2] == (45, near(80 * 45 / 30))


# --- resize: cover windows, contain padding -----------------------------------------------------


def half_noisy(h: int, w: int, noisy_right: bool, seed: int = 0) -> np.ndarray:
    """Flat grey with a quarter-width band of noise at the right (or left) edge."""
    frame = solid(h, w, (90, 90, 90))
    band = slice(w - w // 4, w) if noisy_right else slice(0, w // 4)
    frame[:, band] = np.random.default_rng(seed).integers(0, 256, (h, w // 4, 3))
    return frame


def test_cover_entropy_picks_the_noisy_region() -> None:
    frame = half_noisy(40, 100, noisy_right=True)  # scale 1: the window is an exact slice
    out = run_resize(frame, width=40, height=40, fit="cover", gravity="entropy")
    np.testing.assert_array_equal(out, frame[:, 60:])
    scaled = run_resize(
        np.repeat(np.repeat(frame, 2, 0), 2, 1), width=40, height=40, gravity="entropy"
    )  # scale 0.5 first, then the window
    assert scaled[:, -25:].std() > 30 and scaled[:, :10].std() < 1


def test_cover_center_and_focal_point() -> None:
    frame = quadrants(40, 100)
    np.testing.assert_array_equal(run_resize(frame, width=40, height=40), frame[:, 30:70])
    left = run_resize(frame, width=40, height=40, gravity="focal_point", focal_x=0.0)
    np.testing.assert_array_equal(left, frame[:, :40])


def test_contain_pads_centred_with_the_background() -> None:
    out = run_resize(solid(50, 100, RED), width=60, height=60, fit="contain", background="#00ff00")
    assert out.shape == (60, 60, 3)  # scaled to 60x30, 15 rows of padding above and below
    assert (out[:15] == GREEN).all() and (out[45:] == GREEN).all()
    assert (out[15:45] == RED).all()
    black = run_resize(solid(100, 50, RED), width=60, height=60, fit="contain")
    assert black.shape == (60, 60, 3)  # default: opaque black, no alpha added
    assert (black[:, :15] == 0).all() and (black[:, 45:] == 0).all()
    assert (black[:, 15:45] == RED).all()


def test_contain_translucent_background_adds_alpha() -> None:
    out = run_resize(
        solid(50, 100, RED),
        width=60,
        height=60,
        fit="contain",
        background=RGBA(r=0, g=0, b=255, alpha=0.0),
    )
    assert out.shape == (60, 60, 4)
    assert (out[:15, :, 3] == 0).all() and (out[15:45] == (*RED, 255)).all()


# --- resize: colour fidelity, alpha, uint16, animation ------------------------------------------


@pytest.mark.parametrize("size", [(7, 13), (300, 200), (123, 45)])
@pytest.mark.parametrize("colour", [(10, 200, 30), (255, 0, 0, 128), (3, 4, 5, 255)])
def test_solid_colour_stays_that_colour(size: tuple[int, int], colour: tuple[int, ...]) -> None:
    out = run_resize(solid(64, 48, colour), width=size[0], height=size[1], fit="fill")
    assert out.shape == (size[1], size[0], len(colour))
    assert (out == colour).all()


@pytest.mark.parametrize("width", [37, 90, 250])
def test_no_dark_fringe_around_opaque_red_on_transparent(width: int) -> None:
    frame = np.zeros((120, 120, 4), np.uint8)  # transparent *black*
    frame[30:90, 30:90] = (255, 0, 0, 255)
    out = run_resize(frame, width=width, height=width, fit="fill")
    edge = (out[:, :, 3] > 0) & (out[:, :, 3] < 255)
    assert edge.sum() > 0
    assert (out[edge][:, 0] >= 254).all() and (out[edge][:, 1:3] <= 1).all()


@pytest.mark.parametrize("width", [20, 200])
def test_uint16_gradient_stays_monotonic(width: int) -> None:
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)
    frame = np.repeat(np.tile(ramp[None, :, None], (8, 1, 1)), 3, axis=2)
    out = run_resize(frame, width=width, height=10, fit="fill")
    assert out.dtype == np.uint16 and out.shape == (10, width, 3)
    assert (np.diff(out[:, :, 0].astype(np.int64), axis=1) >= 0).all()
    # The end pixels average at most one output pixel's span (64/width columns) of the ramp.
    assert out.max() >= 65535 * (1 - 1 / width) and out.min() <= 65535 / width
    assert (
        run_resize(solid(9, 9, (65535, 1, 30000, 40000), np.uint16), width=4, height=6, fit="fill")
        == (65535, 1, 30000, 40000)
    ).all()


def test_animation_frames_all_resized_and_aligned() -> None:
    frames = [solid(40, 100, c) for c in (RED, GREEN, BLUE)]
    out = resize([pic(*frames)], ResizeJob(input="x.png", width=50, fit="inside"), CFG).picture
    assert out is not None and len(out.frames) == 3
    for got, colour in zip(out.frames, (RED, GREEN, BLUE), strict=True):
        assert got.shape == (20, 50, 3) and (got == colour).all()
    # Cover's window comes from the first frame and is applied to every frame.
    first, second = half_noisy(40, 100, True), half_noisy(40, 100, False, seed=1)
    spec = ResizeJob(input="x.png", width=40, height=40, gravity="entropy")
    out = resize([pic(first, second)], spec, CFG).picture
    assert out is not None
    np.testing.assert_array_equal(out.frames[1], second[:, 60:])


# --- rotate -------------------------------------------------------------------------------------


def run_rotate(frame: np.ndarray, **fields: Any) -> np.ndarray:
    out = rotate([pic(frame)], RotateJob(input="x.png", **fields), CFG).picture
    assert out is not None
    return out.first


@pytest.mark.parametrize(
    "angle,turns", [(90, -1), (180, 2), (270, 1), (-90, 1), (450, -1), (-360, 0)]
)
@pytest.mark.parametrize("dtype,channels", [(np.uint8, 3), (np.uint16, 4)])
def test_right_angles_are_exact(angle: int, turns: int, dtype: type, channels: int) -> None:
    frame: np.ndarray = (
        np.random.default_rng(angle % 7).integers(0, 60000, (13, 21, channels)).astype(dtype)
    )
    out = run_rotate(frame, angle=angle, flip=angle == -360)
    expected = np.rot90(frame, turns) if angle != -360 else np.flipud(frame)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)


def test_rotate_90_is_clockwise() -> None:
    out = run_rotate(quadrants(), angle=90)  # 40x60 -> 60x40
    assert out.shape == (60, 40, 3)
    assert (out[0, 0] == BLUE).all() and (out[0, -1] == RED).all()
    assert (out[-1, 0] == WHITE).all() and (out[-1, -1] == GREEN).all()


def test_flip_flop() -> None:
    frame = quadrants()
    np.testing.assert_array_equal(run_rotate(frame, flip=True), np.flipud(frame))
    np.testing.assert_array_equal(run_rotate(frame, flop=True), np.fliplr(frame))
    both = run_rotate(frame, angle=90, flip=True, flop=True)
    np.testing.assert_array_equal(both, np.fliplr(np.flipud(np.rot90(frame, -1))))


@pytest.mark.parametrize("angle", [30, 45, 100, -20, 1.5])
def test_any_angle_expands_canvas_and_fills_corners(angle: float) -> None:
    h, w = 40, 60
    out = run_rotate(solid(h, w, RED), angle=angle)  # default fill: transparent black
    rad = math.radians(angle)
    bw = w * abs(math.cos(rad)) + h * abs(math.sin(rad))
    bh = w * abs(math.sin(rad)) + h * abs(math.cos(rad))
    assert out.shape[2] == 4
    assert abs(out.shape[1] - bw) <= 1 and abs(out.shape[0] - bh) <= 1
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert out[y, x, 3] == 0
    cy, cx = out.shape[0] // 2, out.shape[1] // 2
    assert (out[cy, cx] == (*RED, 255)).all()
    visible = out[:, :, 3] > 0  # premultiplied: translucent edges stay red, not darker
    assert (out[visible][:, 0] >= 254).all()


def test_any_angle_opaque_background_and_uint16() -> None:
    out = run_rotate(solid(30, 50, BLUE), angle=45, background="#ff00ff")
    assert out.shape[2] == 3 and (out[0, 0] == (255, 0, 255)).all()
    deep = run_rotate(solid(30, 50, (1000, 2000, 65535), np.uint16), angle=10, background="#ffffff")
    assert deep.dtype == np.uint16 and (deep[0, 0] == 65535).all()
    assert (deep[deep.shape[0] // 2, deep.shape[1] // 2] == (1000, 2000, 65535)).all()


# --- trim ---------------------------------------------------------------------------------------


def run_trim(frame: np.ndarray, threshold: int = 10) -> tuple[np.ndarray, dict[str, int]]:
    result = trim([pic(frame)], TrimJob(input="x.png", threshold=threshold), CFG)
    assert result.picture is not None
    return result.picture.first, result.fields["trim"]


@pytest.mark.parametrize("seed", range(6))
def test_trim_matches_numpy_bounding_box(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(20, 70, 2))
    frame = (200 + rng.integers(-10, 11, (h, w, 3))).astype(np.uint8)  # noise <= threshold
    frame[0, 0] = 200
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, r = int(rng.integers(5, h - 5)), int(rng.integers(5, w - 5)), int(rng.integers(2, 5))
    shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    frame[shape] = (20, 40, 60)
    rows, cols = np.flatnonzero(shape.any(1)), np.flatnonzero(shape.any(0))
    box = {
        "x": int(cols[0]),
        "y": int(rows[0]),
        "width": int(cols[-1] - cols[0] + 1),
        "height": int(rows[-1] - rows[0] + 1),
    }
    out, reported = run_trim(frame)
    assert reported == box
    np.testing.assert_array_equal(out, frame[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def test_trim_uniform_unchanged_uint16_and_alpha() -> None:
    frame = solid(10, 12, (5, 6, 7))
    out, reported = run_trim(frame)
    np.testing.assert_array_equal(out, frame)
    assert reported == {"x": 0, "y": 0, "width": 12, "height": 10}
    deep = solid(20, 20, (30000, 30000, 30000), np.uint16)
    deep[5:8, 4:9] += 10 * 257  # within threshold 10 (8-bit units): not content
    deep[10:12, 3:6] += 11 * 257
    assert run_trim(deep)[1] == {"x": 3, "y": 10, "width": 3, "height": 2}
    clear = np.zeros((16, 16, 4), np.uint8)
    clear[2:5, 6:8, 3] = 255  # differs only in alpha
    assert run_trim(clear)[1] == {"x": 6, "y": 2, "width": 2, "height": 3}


# --- extend -------------------------------------------------------------------------------------


def run_extend(frame: np.ndarray, **fields: Any) -> np.ndarray:
    out = extend([pic(frame)], ExtendJob(input="x.png", **fields), CFG).picture
    assert out is not None
    return out.first


@pytest.mark.parametrize(
    "mode,np_mode", [("copy", "edge"), ("repeat", "wrap"), ("mirror", "symmetric")]
)
@pytest.mark.parametrize("channels", [3, 4])
def test_extend_modes_match_np_pad(mode: str, np_mode: Any, channels: int) -> None:
    frame = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    out = run_extend(frame, top=2, bottom=9, left=3, right=1, extend_with=mode)
    np.testing.assert_array_equal(out, np.pad(frame, ((2, 9), (3, 1), (0, 0)), mode=np_mode))


def test_extend_mirror_repeats_the_edge_pixel() -> None:
    row = np.array([[[1, 1, 1], [2, 2, 2], [3, 3, 3]]], np.uint8)
    out = run_extend(row, left=2, extend_with="mirror")
    assert out[0, :, 0].tolist() == [2, 1, 1, 2, 3]


def test_extend_background() -> None:
    frame = solid(4, 5, RED)
    black = run_extend(frame, top=1, left=2)  # default: opaque black, stays RGB
    assert black.shape == (5, 7, 3) and (black[0] == 0).all() and (black[1:, 2:] == RED).all()
    green = run_extend(frame, bottom=3, background="#00ff00")
    assert (green[4:] == GREEN).all() and (green[:4] == RED).all()
    clear = run_extend(frame, right=2, background=RGBA(r=0, g=0, b=0, alpha=0.5))
    assert clear.shape == (4, 7, 4)
    assert (clear[:, 5:, 3] == 128).all() and (clear[:, :5] == (*RED, 255)).all()
    deep = run_extend(solid(2, 2, (1, 2, 3), np.uint16), top=1, background="#ffffff")
    assert deep.dtype == np.uint16 and (deep[0] == 65535).all() and (deep[1:] == (1, 2, 3)).all()


# --- resize: quality and alignment ----------------------------------------------------------------


def _textured(width: int = 640, height: int = 480) -> np.ndarray:
    """A photo-like scene with fine grain: detail at every scale, where filters differ."""
    import cv2

    grain = np.random.default_rng(3).normal(0, 60, (height, width, 3)).astype(np.float32)
    base = images.photo_like(width, height, seed=4).astype(np.float32)
    return np.clip(base + cv2.GaussianBlur(grain, (0, 0), 1.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width", [500, 333, 160, 97])
def test_shrinking_is_as_good_as_area_averaging_against_lanczos(width: int) -> None:
    """SSIM against Pillow's Lanczos (the reference users compare with), beside OpenCV's
    area averaging computed here: never more than 0.01 worse, and above 0.96."""
    import cv2
    from PIL import Image

    from bench.quality import ssim

    source = _textured()
    height = near(480 * width / 640)

    def luma(frame: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).convert("L"))

    reference = luma(
        np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.LANCZOS))
    )
    ours = ssim(luma(run_resize(source, width=width)), reference)
    area = ssim(luma(cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)), reference)
    assert ours >= 0.96 and ours >= area - 0.01, (ours, area)


@pytest.mark.parametrize("factor", [1.25, 2, 3, 4, 2.5])
def test_shrinking_keeps_features_where_they_were(factor: float) -> None:
    """A soft bright ridge centred at x lands at (x + 0.5) / factor - 0.5 in the output
    (pixel centres map to pixel centres), measured as the intensity centroid."""
    width, centre = 120, 61.3
    ridge = 255 * np.exp(-((np.arange(width) - centre) ** 2) / (2 * 3.0**2))
    frame = np.repeat(np.tile(np.rint(ridge).astype(np.uint8), (24, 1))[:, :, None], 3, 2)
    out = run_resize(frame, width=int(width / factor)).astype(np.float64)[4, :, 0]
    centroid = float((out * np.arange(out.size)).sum() / out.sum())
    assert abs(centroid - ((centre + 0.5) / factor - 0.5)) < 0.1, centroid
