"""blur: a Gaussian of standard deviation `sigma`, as sharp's `blur(sigma)`.

Up to sigma 10 the kernel is an exact (OpenCV, +-4 sigma) Gaussian. Its cost grows with
sigma, so wider blurs (up to 1000) use four box-filter passes whose combined variance is
sigma^2 (Kovesi's "almost Gaussian"; Pillow uses three): constant time per pixel, within
about 4% of the Gaussian's peak. (libvips, under sharp, cuts its kernel at 20% of the peak.)

Alpha is premultiplied for the blur so that the colour of fully transparent pixels (often
black or garbage) does not bleed into the visible edge. Channels are blurred one float
plane at a time, in place (see worker.budget).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from jobs.tone import BlurJob
from worker.ops import OpOutput
from worker.picture import Frame, Picture, filter_planes

if TYPE_CHECKING:
    from imagefleet.settings import Settings

EXACT_LIMIT = 10.0  # sharpen's maximum sigma, so sharpening is always exact
BOX_PASSES = 4


def box_widths(sigma: float, passes: int = BOX_PASSES) -> list[int]:
    """Odd box widths whose summed variances ((w^2 - 1) / 12 each) come closest to sigma^2."""
    low = int(math.sqrt(12 * sigma * sigma / passes + 1))
    low -= 1 - low % 2  # odd, so each box is centred on its pixel
    # How many passes use `low` (the rest use low + 2) to best match the variance.
    m = round((12 * sigma * sigma - passes * (low * low + 4 * low + 3)) / (-4 * low - 4))
    m = min(max(m, 0), passes)
    return [low] * m + [low + 2] * (passes - m)


def gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """Float Gaussian blur with reflected borders (see the module note on large sigma),
    in place: `values` is overwritten and returned (OpenCV filters rows through a ring
    buffer, so this is exact and needs no second image)."""
    if sigma <= EXACT_LIMIT:
        # ksize (0, 0): OpenCV sizes the kernel from sigma (+-4 sigma for float input).
        return cv2.GaussianBlur(
            values, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT, dst=values
        )
    for width in box_widths(sigma):
        cv2.blur(values, (width, width), dst=values, borderType=cv2.BORDER_REFLECT)
    return values


def blur_frame(frame: Frame, sigma: float) -> Frame:
    return filter_planes(frame, lambda plane, _: gaussian(plane, sigma))


def blur(inputs: list[Picture], spec: BlurJob, cfg: Settings) -> OpOutput:
    return OpOutput(inputs[0].map(lambda frame: blur_frame(frame, spec.sigma)))
