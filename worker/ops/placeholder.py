"""placeholder: BlurHash and ThumbHash of the first frame, upright (the codec applied EXIF
orientation), from one working copy that fits 100x100.

One size serves both: ThumbHash's reference encodes at most 100x100 (its examples shrink
to that), and BlurHash - usually fed a 32-64 px thumbnail only to save time - costs well
under a millisecond here at 100 px, while its terms come out closer to the whole image's.
The shrink is area-averaged on premultiplied alpha, so invisible pixels' colour does not
bleed. BlurHash has no alpha: its pixels are composited over the visible pixels' average
colour, as ThumbHash composites its own colour planes - a transparent margin then reads as
the image's colour, not as a black or white it never had.

Small and thin copies are enlarged by repeating pixels (exact: no new colours), because
both references misbehave on few pixels: ThumbHash takes up to 7 terms a side, and a side
with fewer pixels than terms aliases them (a 1x1 image decodes as stripes); BlurHash's
basis, cos(pi * i * x / width), has no half-pixel offset and weighs the first row and
column more, a bias of about 1/side.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from jobs.analysis import PLACEHOLDER_SIDE, PlaceholderJob
from worker.ops import OpOutput
from worker.ops.composite import match_dtype
from worker.picture import Frame, Picture, filter_planes
from worker.placeholders import blurhash, thumbhash

if TYPE_CHECKING:
    from imagefleet.settings import Settings

# ThumbHash: every side at least this many pixels (its alpha takes 5 terms a side). Only
# a long side over 50 px leaves a short side under 8, and there 8 px stores the same aspect
# (1 term across to 7 down, or 1 to 5 with alpha) as fewer.
THUMBHASH_MIN_SIDE = 8
BLURHASH_MIN_SIDE = 64  # BlurHash stores no aspect ratio: stretching changes nothing else


def _repeat(pixels: np.ndarray, rows: int, columns: int) -> np.ndarray:
    return np.repeat(np.repeat(pixels, rows, axis=0), columns, axis=1)


def working_copy(frame: Frame) -> np.ndarray:
    """The frame as 8-bit straight-alpha RGBA that fits 100x100 with its aspect: shrunk,
    or enlarged by a whole factor; then a side under THUMBHASH_MIN_SIDE is stretched."""
    height, width = frame.shape[:2]
    scale = PLACEHOLDER_SIDE / max(width, height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = filter_planes(
            frame, lambda plane, _: cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
        )
    frame = match_dtype(frame, np.dtype(np.uint8))
    if frame.shape[2] == 3:
        frame = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
    if scale >= 2.0:  # the long side ends in 51..100
        frame = _repeat(frame, int(scale), int(scale))
    for axis in (0, 1):  # a side under 8 px: its pixels repeated to exactly 8
        side = frame.shape[axis]
        if side < THUMBHASH_MIN_SIDE:
            frame = np.take(frame, np.arange(THUMBHASH_MIN_SIDE) * side // THUMBHASH_MIN_SIDE, axis)
    return np.ascontiguousarray(frame)


def over_average(rgba: np.ndarray) -> np.ndarray:
    """8-bit RGB: the colour composited over the alpha-weighted average colour."""
    alpha = rgba[:, :, 3:].astype(np.float64) / 255
    colour = rgba[:, :, :3].astype(np.float64)
    total = float(alpha.sum())
    average = (colour * alpha).sum(axis=(0, 1)) / total if total else np.zeros(3)
    return np.clip(np.rint(colour * alpha + average * (1 - alpha)), 0, 255).astype(np.uint8)


def blurhash_pixels(rgba: np.ndarray) -> np.ndarray:
    """BlurHash's input: composited, and each side repeated up to BLURHASH_MIN_SIDE."""
    rgb = over_average(rgba)
    return _repeat(rgb, *(math.ceil(BLURHASH_MIN_SIDE / side) for side in rgb.shape[:2]))


def placeholder(inputs: list[Picture], spec: PlaceholderJob, cfg: Settings) -> OpOutput:
    rgba = working_copy(inputs[0].first)
    x, y = spec.components.x, spec.components.y
    return OpOutput(
        None,
        {
            "blurhash": blurhash(blurhash_pixels(rgba), x, y),
            "thumbhash": base64.b64encode(thumbhash(rgba)).decode("ascii"),
        },
    )
