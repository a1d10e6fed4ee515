"""dominant-color: the most common colour, by a colour histogram (not the mean).

The first frame (a JPEG decoded at 1/2, 1/4 or 1/8 size when that still covers 256 px) is
downsampled to at most 256x256 (area-averaged, alpha-weighted) and its
pixels that are not fully transparent are binned at 5 bits per channel. The peak is the bin
whose 3x3x3 neighbourhood holds the most pixels (so a flat colour whose noise straddles a
bin edge is not split in two and outvoted); the answer is the mean of the pixels in that
neighbourhood, refined once to the pixels within `RADIUS` levels of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from jobs.analysis import DOMINANT_SIDE, DominantColorJob
from worker.ops import OpOutput
from worker.picture import Frame, Picture, strips

if TYPE_CHECKING:
    from imagefleet.settings import Settings

MAX_SIDE = DOMINANT_SIDE
BITS = 5
SIDE = 1 << BITS
RADIUS = 8


def _small_rgba(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Float RGB (0..255) and alpha (0..1), downsampled with INTER_AREA, alpha-weighted."""
    factor = np.float32(255.0 / (65535.0 if frame.dtype == np.uint16 else 255.0))
    h, w = frame.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    if scale == 1.0:  # small already: straight colour, no downsample
        values = frame.astype(np.float32) * factor
        alpha = (
            values[:, :, 3] / 255.0 if frame.shape[2] == 4 else np.ones(frame.shape[:2], np.float32)
        )
        return values[:, :, :3], alpha
    # Full-size float planes one at a time, each shrunk before the next is made.
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    alpha = np.ones(frame.shape[:2], np.float32)
    plane = np.empty(frame.shape[:2], np.float32)
    if frame.shape[2] == 4:
        for rows in strips(frame):
            alpha[rows] = frame[rows, :, 3].astype(np.float32) * factor / 255.0
    shrunk = []
    for channel in range(3):
        for rows in strips(frame):
            plane[rows] = frame[rows, :, channel].astype(np.float32) * factor * alpha[rows]
        shrunk.append(cv2.resize(plane, size, interpolation=cv2.INTER_AREA))
    small_alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    safe = np.where(small_alpha > 0, small_alpha, 1)[:, :, None]
    return np.dstack(shrunk) / safe, small_alpha


def _neighbourhood_counts(counts: np.ndarray) -> np.ndarray:
    """Each bin's count summed over its 3x3x3 neighbourhood (separable box sum)."""
    total = counts
    for axis in range(3):
        padded = np.pad(total, [(1, 1) if a == axis else (0, 0) for a in range(3)])
        head = [slice(None)] * 3
        parts = []
        for start in range(3):
            head[axis] = slice(start, start + SIDE)
            parts.append(padded[tuple(head)])
        total = parts[0] + parts[1] + parts[2]
    return total


def dominant(frame: Frame) -> tuple[int, int, int] | None:
    """The dominant colour of a frame, or None when every pixel is fully transparent."""
    rgb, alpha = _small_rgba(frame)
    pixels = np.clip(rgb[alpha > 0], 0, 255)
    if len(pixels) == 0:
        return None
    levels = np.rint(pixels).astype(np.int32) >> (8 - BITS)
    counts = np.bincount(
        (levels[:, 0] << (2 * BITS)) | (levels[:, 1] << BITS) | levels[:, 2], minlength=SIDE**3
    ).reshape(SIDE, SIDE, SIDE)
    peak = np.array(np.unravel_index(np.argmax(_neighbourhood_counts(counts)), counts.shape))
    centre = pixels[np.all(np.abs(levels - peak) <= 1, axis=1)].mean(axis=0)
    close = pixels[np.all(np.abs(pixels - centre) <= RADIUS, axis=1)]
    if len(close):
        centre = close.mean(axis=0)
    r, g, b = (int(v) for v in np.clip(np.rint(centre), 0, 255))
    return r, g, b


def dominant_color(inputs: list[Picture], spec: DominantColorJob, cfg: Settings) -> OpOutput:
    colour = dominant(inputs[0].first)
    if colour is None:  # nothing visible
        return OpOutput(None, {"dominant": None, "hex": None})
    r, g, b = colour
    return OpOutput(None, {"dominant": {"r": r, "g": g, "b": b}, "hex": f"#{r:02x}{g:02x}{b:02x}"})
