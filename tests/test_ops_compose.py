"""composite and contact-sheet: placement, alpha arithmetic and grid geometry by pixel probes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from imagefleet.settings import load_settings
from jobs.compose import CompositeJob, ContactSheetJob
from jobs.spec import RGBA
from tests.pictures import pic, solid
from worker.ops.composite import composite
from worker.ops.contact_sheet import contact_sheet
from worker.picture import Picture

CFG = load_settings()  # the handlers' third argument

RED, WHITE = (255, 0, 0), (255, 255, 255)


def run_composite(base: np.ndarray, overlay: np.ndarray, **fields: Any) -> np.ndarray:
    out = composite(
        [pic(base), pic(overlay)], CompositeJob(input="b.png", overlay="o.png", **fields), CFG
    ).picture
    assert out is not None
    return out.first


def painted(
    base: np.ndarray, top: int, left: int, h: int, w: int, colour: tuple[int, ...]
) -> np.ndarray:
    """Independent expectation: the base with a clipped opaque rectangle painted in numpy."""
    expected = base.copy()
    expected[max(top, 0) : max(top + h, 0), max(left, 0) : max(left + w, 0)] = colour
    return expected


# --- composite ----------------------------------------------------------------------------------

# Base 40 wide x 30 high, overlay 10x10: (top, left) per gravity, as sharp places it.
GRAVITY = {
    "northwest": (0, 0),
    "north": (0, 15),
    "northeast": (0, 30),
    "west": (10, 0),
    "center": (10, 15),
    "east": (10, 30),
    "southwest": (20, 0),
    "south": (20, 15),
    "southeast": (20, 30),
}


@pytest.mark.parametrize("gravity", GRAVITY)
def test_gravity_places_the_overlay(gravity: str) -> None:
    base, overlay = solid(30, 40, WHITE), solid(10, 10, RED)
    out = run_composite(base, overlay, gravity=gravity)
    top, left = GRAVITY[gravity]
    np.testing.assert_array_equal(out, painted(base, top, left, 10, 10, RED))


def test_southeast_probes() -> None:
    out = run_composite(solid(30, 40, WHITE), solid(10, 10, RED), gravity="southeast")
    assert tuple(out[29, 39]) == RED and tuple(out[20, 30]) == RED
    assert tuple(out[19, 39]) == WHITE and tuple(out[29, 29]) == WHITE


def test_default_is_center_with_odd_leftover() -> None:
    base = solid(31, 41, WHITE)
    out = run_composite(base, solid(10, 10, RED))
    np.testing.assert_array_equal(out, painted(base, 10, 15, 10, 10, RED))


def test_top_left_exact() -> None:
    base = solid(30, 40, WHITE)
    out = run_composite(base, solid(4, 7, RED), top=3, left=5)
    np.testing.assert_array_equal(out, painted(base, 3, 5, 4, 7, RED))


@pytest.mark.parametrize("top,left", [(-5, 35), (25, -3), (-2, -2), (100, 5), (5, -50)])
def test_partly_or_wholly_outside_is_clipped(top: int, left: int) -> None:
    base = solid(30, 40, WHITE)
    out = run_composite(base, solid(10, 10, RED), top=top, left=left)
    np.testing.assert_array_equal(out, painted(base, top, left, 10, 10, RED))


def test_larger_overlay_is_cropped_to_the_base() -> None:
    overlay = solid(50, 60, RED)
    overlay[20:30, 25:35] = (0, 0, 255)  # a blue mark at the overlay's centre
    out = run_composite(solid(20, 30, WHITE), overlay)  # centre: top -15, left -15
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, overlay[15:35, 15:45])


def test_opacity_half_over_white() -> None:
    out = run_composite(solid(8, 8, WHITE), solid(8, 8, RED), opacity=0.5)
    np.testing.assert_allclose(out[4, 4].astype(int), (255, 128, 128), atol=1)


def test_transparent_overlay_changes_nothing() -> None:
    rng = np.random.default_rng(5)
    for channels in (3, 4):
        base = rng.integers(0, 256, (12, 12, channels)).astype(np.uint8)
        overlay = rng.integers(0, 256, (6, 6, 4)).astype(np.uint8)
        overlay[:, :, 3] = 0
        np.testing.assert_array_equal(run_composite(base, overlay, top=2, left=3), base)


def test_overlay_alpha_times_opacity_over_rgb() -> None:
    overlay = solid(4, 4, (0, 0, 0, 128))  # half-transparent black
    out = run_composite(solid(4, 4, (200, 100, 50)), overlay, opacity=0.5)
    a = 128 / 255 * 0.5
    np.testing.assert_allclose(out[0, 0].astype(float), np.array([200, 100, 50]) * (1 - a), atol=1)


def test_over_onto_an_rgba_base() -> None:
    base = solid(4, 8, (255, 255, 255, 128))  # half-transparent white
    base[:, 4:] = (9, 9, 9, 0)  # fully transparent (its colour is meaningless)
    out = run_composite(base, solid(4, 8, (255, 0, 0, 128)))
    # a_o = a_b ~ 0.5: alpha = a_o + a_b (1 - a_o) ~ 0.75; G = a_b (1 - a_o) / alpha ~ 1/3.
    a_o = a_b = 128 / 255
    alpha = a_o + a_b * (1 - a_o)
    np.testing.assert_allclose(
        out[0, 0].astype(float),
        (255, 255 * a_b * (1 - a_o) / alpha, 255 * a_b * (1 - a_o) / alpha, 255 * alpha),
        atol=1,
    )
    np.testing.assert_array_equal(out[0, 6], (255, 0, 0, 128))  # over nothing: the overlay


def test_uint8_overlay_on_uint16_base() -> None:
    base = solid(6, 6, (65535, 65535, 65535), np.uint16)
    out = run_composite(base, solid(6, 6, RED), opacity=0.5)
    assert out.dtype == np.uint16
    np.testing.assert_allclose(out[3, 3].astype(int), (65535, 32768, 32768), atol=1)
    exact = run_composite(base, solid(2, 2, (255, 0, 51)), top=0, left=0)
    np.testing.assert_array_equal(exact[0, 0], (65535, 0, 51 * 257))


def test_uint16_overlay_on_uint8_base() -> None:
    out = run_composite(solid(4, 4, WHITE), solid(2, 2, (0, 32896, 65535), np.uint16))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[2, 2], (0, 128, 255))


def test_every_base_frame_gets_the_overlay() -> None:
    a, b = solid(10, 10, WHITE), solid(10, 10, (0, 0, 255))
    second_overlay_frame = solid(2, 2, (0, 255, 0))
    picture = Picture(frames=[solid(2, 2, RED), second_overlay_frame], format="gif")
    out = composite(
        [pic(a, b), picture], CompositeJob(input="b.gif", overlay="o.gif", gravity="northwest"), CFG
    ).picture
    assert out is not None and len(out.frames) == 2
    for frame, under in zip(out.frames, (a, b), strict=True):
        np.testing.assert_array_equal(frame, painted(under, 0, 0, 2, 2, RED))


# --- contact sheet ------------------------------------------------------------------------------

COLOURS = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (0, 255, 255),
    (255, 0, 255),
    (40, 80, 120),
]


def sheet(frames: list[np.ndarray], **fields: Any) -> tuple[np.ndarray, dict[str, Any]]:
    spec = ContactSheetJob(files=[f"{i}.png" for i in range(len(frames))], **fields)
    result = contact_sheet([pic(f) for f in frames], spec, CFG)
    assert result.picture is not None and result.picture.format == "png"
    return result.picture.first, result.fields


def cell_centre(index: int, cols: int, cw: int, ch: int, gap: int) -> tuple[int, int]:
    row, col = divmod(index, cols)
    return gap + row * (ch + gap) + ch // 2, gap + col * (cw + gap) + cw // 2


def test_grid_geometry_and_cell_colours() -> None:
    frames = [solid(10 + 3 * i, 20 - i, c) for i, c in enumerate(COLOURS[:5])]
    out, fields = sheet(frames, columns=3, cell_width=40, cell_height=30, gap=5)
    assert fields == {"cells": 5, "columns": 3, "rows": 2}
    assert out.shape == (2 * 30 + 3 * 5, 3 * 40 + 4 * 5, 3) and out.dtype == np.uint8
    for i, colour in enumerate(COLOURS[:5]):
        assert tuple(out[cell_centre(i, 3, 40, 30, 5)]) == colour
    assert tuple(out[0, 0]) == WHITE and tuple(out[-1, -1]) == WHITE  # outer border
    assert tuple(out[20, 47]) == WHITE  # the gap between the first two cells (x 45..49)
    assert tuple(out[20, 5]) == RED and tuple(out[20, 44]) == RED  # 20x10 -> 40x20: full width
    assert tuple(out[20, 4]) == WHITE and tuple(out[9, 20]) == WHITE  # border; above the image
    assert tuple(out[37, 20]) == WHITE  # the gap between the rows
    assert tuple(out[cell_centre(5, 3, 40, 30, 5)]) == WHITE  # the empty sixth cell


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_default_columns_near_square(n: int) -> None:
    out, fields = sheet(
        [solid(4, 4, COLOURS[i]) for i in range(n)], cell_width=8, cell_height=6, gap=2
    )
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    assert fields == {"cells": n, "columns": cols, "rows": rows}
    assert out.shape[:2] == (rows * 6 + (rows + 1) * 2, cols * 8 + (cols + 1) * 2)


def test_image_is_fitted_inside_and_centred() -> None:
    """A 100x10 strip in a 40x30 cell becomes 40x4, rows 13..16 of the cell."""
    out, _ = sheet([solid(10, 100, RED)], cell_width=40, cell_height=30, gap=0)
    assert out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out[13:17], solid(4, 40, RED))
    np.testing.assert_array_equal(out[:13], solid(13, 40, WHITE))
    np.testing.assert_array_equal(out[17:], solid(13, 40, WHITE))


def test_shrinking_averages() -> None:
    """INTER_AREA: a 2x2 checker of black and white shrunk 2x becomes mid grey."""
    checker = np.zeros((40, 40, 3), np.uint8)
    checker[::2, ::2] = 255
    checker[1::2, 1::2] = 255
    out, _ = sheet([checker], cell_width=20, cell_height=20, gap=0)
    np.testing.assert_allclose(out.astype(int), 128, atol=1)


def test_rgba_input_gives_rgba_and_shows_the_background() -> None:
    clear = solid(10, 10, (255, 0, 0, 0))
    half = solid(10, 10, (0, 0, 0, 128))
    out, _ = sheet(
        [clear, half], columns=2, cell_width=10, cell_height=10, gap=1, background="#00ff00"
    )
    assert out.shape == (12, 23, 4)
    assert tuple(out[5, 5]) == (0, 255, 0, 255)  # transparent image: the background shows
    np.testing.assert_allclose(out[5, 16].astype(int), (0, 127, 0, 255), atol=1)
    assert tuple(out[0, 0]) == (0, 255, 0, 255)


def test_translucent_background_gives_rgba() -> None:
    background = RGBA(r=0, g=0, b=255, alpha=0.0)
    out, _ = sheet([solid(6, 6, RED)], cell_width=6, cell_height=6, gap=3, background=background)
    assert out.shape == (12, 12, 4)
    assert out[0, 0, 3] == 0 and tuple(out[6, 6]) == (255, 0, 0, 255)


def test_uint16_input_becomes_8bit() -> None:
    frame = solid(5, 5, (65535, 32896, 257 * 10), np.uint16)
    out, _ = sheet([frame], cell_width=5, cell_height=5, gap=1)
    assert out.dtype == np.uint8 and out.shape == (7, 7, 3)
    assert tuple(out[3, 3]) == (255, 128, 10)


def test_uses_the_first_frame_only() -> None:
    animated = Picture(frames=[solid(4, 4, RED), solid(4, 4, (0, 0, 255))], format="gif")
    result = contact_sheet(
        [animated], ContactSheetJob(files=["a.gif"], cell_width=4, cell_height=4, gap=0), CFG
    )
    assert result.picture is not None and len(result.picture.frames) == 1
    np.testing.assert_array_equal(result.picture.first, solid(4, 4, RED))


def test_columns_beyond_the_image_count_are_dropped() -> None:
    out, fields = sheet(
        [solid(4, 4, RED), solid(4, 4, WHITE)], columns=50, cell_width=4, cell_height=4, gap=1
    )
    assert fields == {"cells": 2, "columns": 2, "rows": 1}
    assert out.shape == (6, 11, 3)
