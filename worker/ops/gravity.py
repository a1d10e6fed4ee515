"""Choosing a `width x height` window inside an image: center, focal point, entropy,
attention (worker.saliency) or faces (worker.faces, attention when there is none).

Shared by crop and resize's cover mode. Windows never scale and never leave the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from jobs.errors import ErrorCode, FleetError
from worker import faces as face_detection
from worker.budget import STRIP_PIXELS
from worker.picture import Frame, strips
from worker.saliency import attention_origin


class Box(NamedTuple):
    x: int
    y: int
    width: int
    height: int

    def cut(self, frame: Frame) -> Frame:
        return np.ascontiguousarray(
            frame[self.y : self.y + self.height, self.x : self.x + self.width]
        )

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


def focal_point(image_size: tuple[int, int], width: int, height: int, fx: float, fy: float) -> Box:
    """The window centred on (fx, fy) in [0, 1], shifted back inside the image."""
    iw, ih = image_size
    # Nearest position; exact halves go left/up, like center, so focal 0.5 == center.
    x = min(max(math.ceil(fx * iw - width / 2 - 0.5), 0), iw - width)
    y = min(max(math.ceil(fy * ih - height / 2 - 0.5), 0), ih - height)
    return Box(x, y, width, height)


def _across(sums: np.ndarray, width: int) -> np.ndarray:
    """Sums of `width` consecutive columns, for each row of `sums`."""
    running = sums.cumsum(axis=1)
    out = running[:, width - 1 :].copy()
    out[:, 1:] -= running[:, :-width]
    return out


def _column_sums(luma: np.ndarray, height: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(y, c1, c2) blocks: sums of L and L^2 down each column over `height` rows for the
    windows starting at rows y, y + 1, ...; slid down a block of rows at a time (an
    integral image would cost 16 bytes a pixel). Exact int64 (255^2 x 2^32 pixels fits)."""
    ih, iw = luma.shape
    c1, c2 = np.zeros((1, iw), np.int64), np.zeros((1, iw), np.int64)
    for rows in strips(luma[:height]):
        part = luma[rows].astype(np.int64)
        c1[0] += part.sum(axis=0)
        c2[0] += (part * part).sum(axis=0)
    y = 0
    while True:
        yield y, c1, c2
        y += len(c1)
        if y > ih - height:
            return
        end = min(y + max(1, STRIP_PIXELS // iw), ih - height + 1)
        enter = luma[y + height - 1 : end + height - 1].astype(np.int64)
        leave = luma[y - 1 : end - 1].astype(np.int64)
        c1 = c1[-1] + (enter - leave).cumsum(axis=0)
        c2 = c2[-1] + (enter * enter - leave * leave).cumsum(axis=0)


def highest_variance_origin(luma: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the `width x height` window with the highest luminance variance.

    Column sums over `height` rows (see _column_sums) summed across `width` columns give
    every window's sums of L and L^2. Ties go to the top-most, then left-most window.
    """
    n = width * height
    best, origin = None, (0, 0)
    for y, c1, c2 in _column_sums(luma, height):
        s1, s2 = _across(c1, width), _across(c2, width)
        if 255**2 * n * n < 2**62:
            # n^2 * variance = n * sum(L^2) - sum(L)^2, exactly: equal variances tie exactly.
            score = n * s2 - s1 * s1
        else:  # windows over ~11 MP: exact ints would overflow; float is plenty there
            mean = s1 / n
            score = s2 / n - mean * mean
        # argmax returns the first maximum in row-major order: top-most, then left-most;
        # a later block must beat it strictly.
        index = int(np.argmax(score))
        if best is None or score.flat[index] > best:
            best = score.flat[index]
            origin = (index % score.shape[1], y + index // score.shape[1])
    return origin


def luma(frame: Frame) -> np.ndarray:
    """ITU-R 601-2 luma in 0..255 (as Pillow's "L"), from 8- or 16-bit RGB."""
    out = np.empty(frame.shape[:2], np.uint8)
    for rows in strips(frame):  # float temporaries a strip at a time
        rgb = frame[rows, :, :3].astype(np.float32)
        if frame.dtype == np.uint16:
            rgb /= 257.0
        out[rows] = np.rint(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    return out


def entropy(frame: Frame, width: int, height: int) -> Box:
    x, y = highest_variance_origin(luma(frame), width, height)
    return Box(x, y, width, height)


def attention(frame: Frame, width: int, height: int) -> Box:
    x, y = attention_origin(frame, width, height)
    return Box(x, y, width, height)


def around_faces(
    image_size: tuple[int, int], width: int, height: int, faces: Sequence[face_detection.Face]
) -> Box:
    """The window centred on the faces it can hold: the largest first, then each smaller
    one whose addition still fits; centred on the largest alone when even that is too big.
    Clamped inside, a window at least as large as the faces still holds them all."""
    iw, ih = image_size
    chosen: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1
    for face in sorted(faces, key=lambda f: f.width * f.height, reverse=True):
        box = (face.x, face.y, face.x + face.width, face.y + face.height)
        union = box if chosen is None else (
            min(chosen[0], box[0]), min(chosen[1], box[1]),
            max(chosen[2], box[2]), max(chosen[3], box[3]),
        )  # fmt: skip
        if chosen is None or (union[2] - union[0] <= width and union[3] - union[1] <= height):
            chosen = union
    assert chosen is not None
    x = min(max(math.floor((chosen[0] + chosen[2] - width) / 2), 0), iw - width)
    y = min(max(math.floor((chosen[1] + chosen[3] - height) / 2), 0), ih - height)
    return Box(x, y, width, height)


def placed(
    frame: Frame, gravity: str, width: int, height: int, fx: float = 0.5, fy: float = 0.5
) -> tuple[Box, dict[str, Any]]:
    """The `width x height` window that `gravity` picks (CROP_OUT_OF_BOUNDS if too big),
    and the facts to report with it: `faces` (in the frame's pixels) for gravity face."""
    size = (frame.shape[1], frame.shape[0])
    check_fits(width, height, size)
    if gravity == "focal_point":
        return focal_point(size, width, height, fx, fy), {}
    if gravity == "entropy":
        return entropy(frame, width, height), {}
    if gravity == "attention":
        return attention(frame, width, height), {}
    if gravity == "face":
        found = face_detection.detect(frame)
        box = around_faces(size, width, height, found) if found else attention(frame, width, height)
        return box, {"faces": [f.as_dict() for f in found]}
    return center(size, width, height), {}
