"""Choosing a `width x height` window inside an image: center, focal point, or entropy.

Shared by crop (and by resize's cover mode later). Windows never scale and never leave
the image.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from jobs.errors import ErrorCode, FleetError
from worker.picture import Frame


class Box(NamedTuple):
    x: int
    y: int
    width: int
    height: int

    def cut(self, frame: Frame) -> Frame:
        return np.ascontiguousarray(frame[self.y:self.y + self.height, self.x:self.x + self.width])

    def as_dict(self) -> dict[str, int]:
        return self._asdict()


def check_fits(width: int, height: int, image_size: tuple[int, int]) -> None:
    iw, ih = image_size
    if width > iw or height > ih:
        raise FleetError(
            ErrorCode.CROP_OUT_OF_BOUNDS,
            f"a {width}x{height} window does not fit in the {iw}x{ih} image",
        )


def center(image_size: tuple[int, int], width: int, height: int) -> Box:
    iw, ih = image_size
    return Box((iw - width) // 2, (ih - height) // 2, width, height)


def focal_point(
    image_size: tuple[int, int], width: int, height: int, fx: float, fy: float
) -> Box:
    """The window centred on (fx, fy) in [0, 1], shifted back inside the image."""
    iw, ih = image_size
    # Nearest position; exact halves go left/up, like center, so focal 0.5 == center.
    x = min(max(math.ceil(fx * iw - width / 2 - 0.5), 0), iw - width)
    y = min(max(math.ceil(fy * ih - height / 2 - 0.5), 0), ih - height)
    return Box(x, y, width, height)


def highest_variance_origin(luma: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the `width x height` window with the highest luminance variance.

    Integral images of L and L^2 give every window's sum in O(1), so the whole search is a
    few vectorised array operations. Ties go to the top-most, then left-most window.
    """
    # Exact int64 sums (255^2 x 2^32 pixels still fits), so equal windows tie exactly.
    values = luma.astype(np.int64)
    s1 = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.int64)
    s2 = np.zeros_like(s1)
    s1[1:, 1:] = values.cumsum(0).cumsum(1)
    s2[1:, 1:] = (values * values).cumsum(0).cumsum(1)

    def window_sums(s: np.ndarray) -> np.ndarray:
        return s[height:, width:] - s[:-height, width:] - s[height:, :-width] + s[:-height, :-width]

    n = width * height
    if 255**2 * n * n < 2**62:
        # n^2 * variance = n * sum(L^2) - sum(L)^2, exactly, so equal variances tie exactly.
        score = n * window_sums(s2) - window_sums(s1) ** 2
    else:  # windows over ~11 MP: exact ints would overflow; float is plenty there
        mean = window_sums(s1) / n
        score = window_sums(s2) / n - mean * mean
    # argmax returns the first maximum in row-major order: top-most, then left-most.
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(x), int(y)


def luma(frame: Frame) -> np.ndarray:
    """ITU-R 601-2 luma in 0..255 (as Pillow's "L"), from 8- or 16-bit RGB."""
    rgb = frame[:, :, :3].astype(np.float32)
    if frame.dtype == np.uint16:
        rgb /= 257.0
    return np.rint(rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)


def entropy(frame: Frame, width: int, height: int) -> Box:
    x, y = highest_variance_origin(luma(frame), width, height)
    return Box(x, y, width, height)


def window(frame: Frame, gravity: str, width: int, height: int, fx: float = 0.5,
           fy: float = 0.5) -> Box:
    """The `width x height` window that `gravity` picks (CROP_OUT_OF_BOUNDS if too big)."""
    size = (frame.shape[1], frame.shape[0])
    check_fits(width, height, size)
    if gravity == "focal_point":
        return focal_point(size, width, height, fx, fy)
    if gravity == "entropy":
        return entropy(frame, width, height)
    return center(size, width, height)
