"""Attention windows: where the salient content of an image is (sharp's `attention`).

After libvips' smartcrop (VIPS_INTERESTING_ATTENTION, which sharp's `attention` strategy
calls): on a small copy of the image, a score per pixel from luminance edges, colour
saturation and skin tones. libvips centres the window on the peak of that map blurred;
here the window goes where the blurred map's sum inside it is largest, so a window larger
than the salient region takes all of it rather than cutting it at the peak.

The small copy is a box average of premultiplied colour (transparent pixels count as
black, as libvips premultiplies first), made a strip at a time: a few MB whatever the size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from worker.budget import STRIP_PIXELS
from worker.picture import Frame, max_value

MAP_SIDE = 64  # the score map's longer side: windows are placed to ~1/64 of the image
EDGE_WEIGHT = 5.0  # x |Laplacian| of luminance (0..1): a sharp black/white edge scores ~5
SATURATION_FLOOR = 20.0  # CIE Lab chroma below this is not "saturated" (greys, skin, sky)
SATURATION_WEIGHT = 1 / 60  # chroma 80 (a vivid colour) scores 1
SKIN_WEIGHT = 1.0  # a skin-tone pixel scores 1, as a vivid colour does
# Skin in YCbCr (Chai & Ngan 1999): independent of the skin's lightness.
SKIN_CB, SKIN_CR, SKIN_MIN_Y = (77, 127), (133, 173), 40

# Linear sRGB -> CIE XYZ (D65), and the D65 white point.
_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32
)
_WHITE = np.array([0.9505, 1.0, 1.089], np.float32)


def thumbnail(frame: Frame, longest: int) -> np.ndarray:
    """Float32 RGB in 0..1 (premultiplied by alpha) with the longer side at most `longest`,
    by box averages: a whole-pixel block average a strip at a time, then cv2's INTER_AREA."""
    ih, iw = frame.shape[:2]
    scale = min(1.0, longest / max(iw, ih))
    size = (max(1, round(iw * scale)), max(1, round(ih * scale)))
    k = max(1, int(1 / scale) // 2)  # blocks of k x k pixels leave about twice the target
    bw, bh = max(1, iw // k), max(1, ih // k)  # the last < k columns/rows are left out
    reduced = np.empty((bh, bw, 3), np.float32)
    rows = max(k, STRIP_PIXELS // max(1, iw) // k * k)
    for top in range(0, bh * k, rows):
        part = frame[top : min(top + rows, bh * k), : bw * k]
        if frame.shape[2] == 4:  # premultiplied: transparent pixels add nothing
            rgb = part[..., :3] * (part[..., 3:] / np.float32(max_value(frame)))
        else:
            rgb = np.ascontiguousarray(part)
        n = part.shape[0] // k
        # INTER_AREA at a whole factor is the exact k x k block average.
        block = cv2.resize(rgb, (bw, n), interpolation=cv2.INTER_AREA)
        reduced[top // k : top // k + n] = block
    reduced /= max_value(frame)
    if (bw, bh) == size:
        return reduced
    return cv2.resize(reduced, size, interpolation=cv2.INTER_AREA)


def score_map(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel salience of a small float RGB image: edges + saturation + skin."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _XYZ.T
    luminance = np.ascontiguousarray(xyz[..., 1])
    edges = EDGE_WEIGHT * np.abs(cv2.Laplacian(luminance, cv2.CV_32F, ksize=1))
    # CIE Lab chroma from XYZ.
    t = xyz / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    a, b = 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])
    chroma = np.hypot(a, b)
    saturation = SATURATION_WEIGHT * np.maximum(chroma - SATURATION_FLOOR, 0)
    # Skin: ITU-R 601 YCbCr of the 8-bit sRGB values.
    r, g, b8 = (255 * rgb[..., i] for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b8
    cb, cr = 128 + 0.564 * (b8 - y), 128 + 0.713 * (r - y)
    skin = ((cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]) & (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1])) & (
        y >= SKIN_MIN_Y
    )
    return (edges + saturation + SKIN_WEIGHT * skin).astype(np.float32)


def _window_sums(scores: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sum of `scores` in every `width x height` window (rows: top, columns: left)."""
    integral = cv2.integral(scores, sdepth=cv2.CV_64F)
    return (
        integral[height:, width:]
        - integral[:-height, width:]
        - integral[height:, :-width]
        + integral[:-height, :-width]
    )


def _best(sums: np.ndarray, cells: int) -> tuple[float, float]:
    """(row, column) of the largest sum; near-ties go to the one nearest the centre, and
    equally near ones are averaged, so a flat or symmetric image gives the centred window.
    Near: within float noise (~1e-6 a cell on a flat image) of the largest."""
    top = float(sums.max())
    rows, cols = np.nonzero(sums >= top - 1e-6 * abs(top) - 1e-5 * cells)
    distance = (rows - (sums.shape[0] - 1) / 2) ** 2 + (cols - (sums.shape[1] - 1) / 2) ** 2
    nearest = distance <= distance.min() + 1e-9
    return float(rows[nearest].mean()), float(cols[nearest].mean())


def _to_image(position: float, positions: int, travel: int) -> int:
    """A map window's position (of `positions`) as the image window's, by its fraction of
    the way across: the first and last positions map to the image's edges exactly.
    Nearest pixel, halves going left/up as in gravity center."""
    if positions <= 1:
        return travel // 2
    return math.ceil(position / (positions - 1) * travel - 0.5)


def attention_origin(frame: Frame, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the `width x height` window (inside the frame) with the most
    salient content."""
    ih, iw = frame.shape[:2]
    rgb = thumbnail(frame, MAP_SIDE)
    mh, mw = rgb.shape[:2]
    sx, sy = mw / iw, mh / ih
    ww = min(mw, max(1, round(width * sx)))
    wh = min(mh, max(1, round(height * sy)))
    # libvips' blur: a tenth of the window's diagonal on the map, at least one pixel.
    sigma = max(1.0, math.hypot(ww, wh) / 10)
    scores = cv2.GaussianBlur(score_map(rgb), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    sums = _window_sums(scores, ww, wh)
    row, col = _best(sums, ww * wh)
    return _to_image(col, sums.shape[1], iw - width), _to_image(row, sums.shape[0], ih - height)
