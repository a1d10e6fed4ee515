"""blur, sharpen, grayscale and adjust against independent expectations (numpy, textbook Lab)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from imagefleet.settings import load_settings
from jobs.spec import RGB
from jobs.tone import AdjustJob, BlurJob, GrayscaleJob, SharpenJob
from tests.pictures import pic, solid
from worker.ops.adjust import adjust
from worker.ops.blur import blur, box_widths, gaussian
from worker.ops.grayscale import grayscale
from worker.ops.sharpen import sharpen

CFG = load_settings()  # the handlers' third argument


def run_blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    out = blur([pic(frame)], BlurJob(input="x.png", sigma=sigma), CFG).picture
    assert out is not None
    return out.first


def run_sharpen(frame: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    out = sharpen([pic(frame)], SharpenJob(input="x.png", sigma=sigma), CFG).picture
    assert out is not None
    return out.first


def run_grey(frame: np.ndarray) -> np.ndarray:
    out = grayscale([pic(frame)], GrayscaleJob(input="x.png"), CFG).picture
    assert out is not None
    return out.first


def run_adjust(frame: np.ndarray, **fields: Any) -> np.ndarray:
    out = adjust([pic(frame)], AdjustJob(input="x.png", **fields), CFG).picture
    assert out is not None
    return out.first


# --- an independent sRGB -> CIE Lab (D65), straight from the textbook formulas -----------------


def srgb_to_lab(rgb: np.ndarray, top: float = 255.0) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / top
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def test_textbook_lab_sanity() -> None:
    """The reference itself: white L*=100, sRGB red (53.24, 80.09, 67.20)."""
    np.testing.assert_allclose(srgb_to_lab(np.array([255, 255, 255])), [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(
        srgb_to_lab(np.array([255, 0, 0])), np.array([53.24, 80.09, 67.20]), atol=0.02
    )


# --- blur -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.5, 3.0, 5.0])
def test_blur_of_a_dot_is_a_gaussian(sigma: float) -> None:
    """A single bright dot spreads into a sampled 2D Gaussian of the requested sigma."""
    n = 81
    frame = np.zeros((n, n, 3), np.uint16)
    frame[40, 40] = 65535
    out = run_blur(frame, sigma)[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[:n, :n] - 40
    mass = out.sum()
    measured = np.sqrt((out * xs**2).sum() / mass)
    assert measured == pytest.approx(sigma, rel=0.10)
    assert np.sqrt((out * ys**2).sum() / mass) == pytest.approx(sigma, rel=0.10)
    # Normalised centre-row profile against exp(-x^2 / 2 sigma^2).
    expected = np.exp(-((np.arange(n) - 40) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(out[40] / out[40, 40], expected, atol=0.03)


@pytest.mark.parametrize("sigma", [10.5, 25.0, 60.0])
def test_wide_blur_is_close_to_a_gaussian(sigma: float) -> None:
    """Above sigma 10 (box passes): std within 2%, profile within 5% of the peak."""
    n = int(12 * sigma) | 1
    c = n // 2
    frame = np.zeros((1, n, 3), np.uint16)  # one row: the horizontal profile exactly
    frame[0, c] = 65535
    row = gaussian(frame.astype(np.float32), sigma)[0, :, 0].astype(np.float64)
    x = np.arange(n) - c
    assert np.sqrt((row * x**2).sum() / row.sum()) == pytest.approx(sigma, rel=0.02)
    expected = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    assert np.abs(row / 65535 - expected).max() < 0.05 * expected.max()


@pytest.mark.parametrize("sigma", [10.1, 33.3, 400.0, 1000.0])
def test_box_widths_match_the_variance(sigma: float) -> None:
    widths = box_widths(sigma)
    assert all(w % 2 == 1 for w in widths)
    assert sum((w * w - 1) / 12 for w in widths) == pytest.approx(sigma**2, rel=0.03)


def test_huge_sigma_on_a_tiny_image_averages_it() -> None:
    frame = np.zeros((5, 7, 3), np.uint8)
    frame[2, 3] = 255
    frame[0, 0] = 255
    frame[4, 6] = 255
    out = run_blur(frame, 1000.0)
    np.testing.assert_allclose(out.astype(int), round(3 * 255 / 35), atol=1)  # the mean


@pytest.mark.parametrize(
    "dtype,colour",
    [
        (np.uint8, (200, 30, 90)),
        (np.uint8, (200, 30, 90, 128)),
        (np.uint16, (51234, 7, 65535, 40000)),
    ],
)
def test_blur_of_a_flat_image_is_unchanged(dtype: Any, colour: tuple[int, ...]) -> None:
    frame = solid(20, 30, colour, dtype)
    out = run_blur(frame, 4.0)
    assert out.dtype == dtype and out.shape == frame.shape
    np.testing.assert_allclose(out.astype(int), frame.astype(int), atol=1)


def test_blur_premultiplies_alpha() -> None:
    """Hidden colour under alpha 0 must not bleed into the visible edge."""
    frame = np.zeros((20, 40, 4), np.uint8)
    frame[:, :20] = (255, 0, 0, 255)  # opaque red
    frame[:, 20:] = (0, 255, 0, 0)  # fully transparent, hidden green
    out = run_blur(frame, 3.0)
    visible = out[:, :, 3] > 0
    assert (out[:, 18:24, 3] > 0).all() and (out[:, 18:24, 3] < 255).all()  # soft alpha edge
    assert (out[:, :, 1][visible] <= 1).all()  # no green anywhere
    assert (out[:, :, 0][out[:, :, 3] > 8] >= 250).all()  # still red where clearly visible


def test_blur_every_frame_of_an_animation() -> None:
    a, b = np.zeros((15, 15, 3), np.uint8), np.zeros((15, 15, 3), np.uint8)
    a[7, 7], b[3, 3] = 255, 255
    out = blur([pic(a, b)], BlurJob(input="x.png", sigma=1.0), CFG).picture
    assert out is not None and len(out.frames) == 2
    assert out.frames[0][7, 7, 0] < 255 and out.frames[0][7, 8, 0] > 0
    assert out.frames[1][3, 3, 0] < 255 and out.frames[1][3, 4, 0] > 0


# --- sharpen ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_sharpen_overshoots_a_step_edge(dtype: Any, top: int) -> None:
    lo, hi = int(top * 0.3), int(top * 0.7)
    frame = solid(10, 40, (lo, lo, lo, top), dtype)
    frame[:, 20:, :3] = hi
    out = run_sharpen(frame, 1.0)
    assert out.dtype == dtype
    row = out[5, :, 0].astype(int)
    assert row[17:20].min() < lo and row[20:23].max() > hi  # dark and bright halos
    assert row[19] - row[20] < lo - hi  # steeper step: contrast across the edge grew
    assert row[0] == lo and row[-1] == hi  # far from the edge: unchanged
    np.testing.assert_array_equal(out[:, :, 3], frame[:, :, 3])  # alpha untouched


def test_sharpen_clips_to_the_dtype() -> None:
    frame = solid(8, 20, (5, 5, 5))
    frame[:, 10:] = 250
    row = run_sharpen(frame, 2.0)[4, :, 0]
    assert row.min() == 0 and row.max() == 255


def test_sharpen_leaves_a_flat_image_unchanged() -> None:
    frame = solid(12, 12, (10, 120, 240, 77))
    np.testing.assert_array_equal(run_sharpen(frame, 2.0), frame)


# --- grayscale ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,top,channels",
    [(np.uint8, 255, 3), (np.uint8, 255, 4), (np.uint16, 65535, 3), (np.uint16, 65535, 4)],
)
def test_grayscale_is_rec709_luminance(dtype: Any, top: int, channels: int) -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, top + 1, (16, 24, channels)).astype(dtype)
    out = run_grey(frame)
    assert out.dtype == dtype and out.shape == frame.shape
    rgb = frame[:, :, :3].astype(np.float64)
    y = 0.2126 * rgb[:, :, 0] + 0.7152 * rgb[:, :, 1] + 0.0722 * rgb[:, :, 2]
    np.testing.assert_allclose(out[:, :, 0], y, atol=1)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out[:, :, 1], out[:, :, 2])
    if channels == 4:
        np.testing.assert_array_equal(out[:, :, 3], frame[:, :, 3])


# --- adjust -------------------------------------------------------------------------------------


def test_brightness_multiplies_lightness() -> None:
    frame = solid(4, 4, (60, 60, 60))
    out = run_adjust(frame, brightness=2.0)
    assert out[0, 0, 0] > 60 and len(set(out[0, 0])) == 1  # a lighter grey
    assert srgb_to_lab(out[0, 0])[0] == pytest.approx(2 * srgb_to_lab(frame[0, 0])[0], abs=0.5)


def test_lightness_adds_to_lightness() -> None:
    frame = solid(4, 4, (100, 100, 100))
    out = run_adjust(frame, lightness=-15)
    assert srgb_to_lab(out[0, 0])[0] == pytest.approx(srgb_to_lab(frame[0, 0])[0] - 15, abs=0.5)


def test_saturation_zero_gives_grey_of_the_same_lightness() -> None:
    frame = np.array([[[200, 80, 40], [20, 150, 220], [90, 200, 60]]], np.uint8)
    out = run_adjust(frame, saturation=0.0)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out[:, :, 1], out[:, :, 2])
    np.testing.assert_allclose(srgb_to_lab(out)[..., 0], srgb_to_lab(frame)[..., 0], atol=0.5)


def test_saturation_scales_chroma() -> None:
    frame = solid(2, 2, (150, 110, 100))
    out = run_adjust(frame, saturation=0.5)
    before, after = srgb_to_lab(frame[0, 0]), srgb_to_lab(out[0, 0])
    assert np.hypot(*after[1:]) == pytest.approx(0.5 * np.hypot(*before[1:]), abs=0.6)


def test_hue_180_turns_red_cyan() -> None:
    out = run_adjust(solid(2, 2, (255, 0, 0)), hue=180)[0, 0].astype(int)
    assert out[1] > out[0] and out[2] > out[0]


def test_hue_rotates_the_lab_hue_angle() -> None:
    frame = solid(2, 2, (120, 140, 100))  # low chroma: stays in gamut when rotated
    out = run_adjust(frame, hue=90)
    before, after = srgb_to_lab(frame[0, 0]), srgb_to_lab(out[0, 0])
    turn = np.degrees(np.arctan2(after[2], after[1]) - np.arctan2(before[2], before[1]))
    assert (turn + 360) % 360 == pytest.approx(90, abs=3)


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_negate_inverts_colour_not_alpha(dtype: Any, top: int) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, top + 1, (9, 11, 4)).astype(dtype)
    out = run_adjust(frame, negate=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:, :, :3], top - frame[:, :, :3])
    np.testing.assert_array_equal(out[:, :, 3], frame[:, :, 3])


def test_tint_keeps_luminance_and_takes_the_tint_hue() -> None:
    greys = np.arange(40, 221, 20, dtype=np.uint8)
    frame = np.repeat(greys[None, :, None], 3, axis=2)
    out = run_adjust(frame, tint=RGB(r=255, g=240, b=200))
    lab_in, lab_out = srgb_to_lab(frame[0]), srgb_to_lab(out[0])
    assert (np.diff(lab_out[:, 0]) > 0).all()  # luminance ordering kept
    np.testing.assert_allclose(lab_out[:, 0], lab_in[:, 0], atol=1.0)
    tint = srgb_to_lab(np.array([255, 240, 200]))
    np.testing.assert_allclose(lab_out[:, 1:], np.tile(tint[1:], (len(greys), 1)), atol=1.5)


def test_tint_then_negate_order_and_alpha() -> None:
    frame = solid(3, 3, (90, 130, 170, 99))
    tinted = run_adjust(frame, tint=RGB(r=0, g=0, b=255))
    both = run_adjust(frame, tint=RGB(r=0, g=0, b=255), negate=True)
    np.testing.assert_array_equal(both[:, :, :3], 255 - tinted[:, :, :3])
    np.testing.assert_array_equal(both[:, :, 3], frame[:, :, 3])


@pytest.mark.parametrize("dtype,top,tolerance", [(np.uint8, 255, 0), (np.uint16, 65535, 2)])
def test_neutral_modulate_round_trips(dtype: Any, top: int, tolerance: int) -> None:
    """sRGB -> Lab -> sRGB with no change is lossless at 8 bits and near it at 16."""
    rng = np.random.default_rng(11)
    frame = rng.integers(0, top + 1, (32, 32, 3)).astype(dtype)
    out = run_adjust(frame, brightness=1.0, saturation=1.0, hue=0)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.astype(int), frame.astype(int), atol=tolerance)


def test_adjust_every_frame() -> None:
    a, b = solid(2, 2, (10, 20, 30)), solid(2, 2, (200, 100, 0))
    out = adjust([pic(a, b)], AdjustJob(input="x.png", negate=True), CFG).picture
    assert out is not None
    np.testing.assert_array_equal(out.frames[1], 255 - b)
