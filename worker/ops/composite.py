"""composite: lay the overlay's first frame over every frame of the base ("over" operator).

Placement is (top, left) when given, else a gravity (sharp's positions, centre by
default). Any part of the overlay outside the base is clipped away: a larger overlay is
cropped to the base rather than rejected as sharp does. The output keeps the base's
size, dtype and channels; an opaque base stays opaque. The float blend runs a strip of
rows at a time into the base's copy (see worker.budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jobs.compose import CompositeJob
from worker.ops import OpOutput
from worker.picture import Frame, Picture, max_value, strips

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def _offset(outer: int, inner: int, where: str) -> int:
    """Start of `inner` along an axis of `outer`: "start", "middle" or "end"."""
    if where == "start":
        return 0
    if where == "end":
        return outer - inner
    return int((outer - inner) / 2)  # truncate towards zero, as sharp's C integer division


def position(
    base_hw: tuple[int, int], over_hw: tuple[int, int], spec: CompositeJob
) -> tuple[int, int]:
    """(top, left) of the overlay on the base."""
    if spec.top is not None and spec.left is not None:
        return spec.top, spec.left
    gravity = spec.gravity or "center"
    vertical = (
        "start"
        if gravity.startswith("north")
        else ("end" if gravity.startswith("south") else "middle")
    )
    horizontal = (
        "end" if gravity.endswith("east") else ("start" if gravity.endswith("west") else "middle")
    )
    return (_offset(base_hw[0], over_hw[0], vertical), _offset(base_hw[1], over_hw[1], horizontal))


def match_dtype(frame: Frame, dtype: np.dtype) -> Frame:
    """8 <-> 16 bit by the exact factor 257 (0xff -> 0xffff)."""
    if frame.dtype == dtype:
        return frame
    if dtype == np.uint16:
        return frame.astype(np.uint16) * 257
    return np.rint(frame / 257.0).astype(np.uint8)


def over(base: Frame, overlay: Frame, top: int, left: int, opacity: float) -> Frame:
    bh, bw = base.shape[:2]
    oh, ow = overlay.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + oh, bh), min(left + ow, bw)
    if y0 >= y1 or x0 >= x1:
        return base  # entirely outside the base
    out = base.copy()
    region = out[y0:y1, x0:x1]
    overlap = overlay[y0 - top : y1 - top, x0 - left : x1 - left]
    for rows in strips(region):
        region[rows] = blend(region[rows], match_dtype(overlap[rows], base.dtype), opacity)
    return out


def blend(under_pixels: Frame, over_pixels: Frame, opacity: float) -> Frame:
    """`over_pixels` over `under_pixels` (same size and dtype), in the under's channels."""
    scale = float(max_value(under_pixels))
    patch = over_pixels.astype(np.float32) / scale
    under = under_pixels.astype(np.float32) / scale
    a_o = (patch[:, :, 3:4] if patch.shape[2] == 4 else np.ones_like(patch[:, :, :1])) * opacity
    colour_o = patch[:, :, :3]
    if under.shape[2] == 4:
        a_b = under[:, :, 3:4]
        alpha = a_o + a_b * (1 - a_o)
        mixed = colour_o * a_o + under[:, :, :3] * a_b * (1 - a_o)
        # Where the result is fully transparent its colour is irrelevant: keep 0.
        colour = np.divide(mixed, alpha, out=np.zeros_like(mixed), where=alpha > 0)
        result = np.concatenate([colour, alpha], axis=2)
    else:
        result = colour_o * a_o + under * (1 - a_o)
    return np.clip(np.rint(result * scale), 0, scale).astype(under_pixels.dtype)


def composite(inputs: list[Picture], spec: CompositeJob, cfg: Settings) -> OpOutput:
    base, overlay_picture = inputs[0], inputs[1]
    overlay = overlay_picture.first  # matched to the base's dtype a strip at a time
    top, left = position(base.first.shape[:2], overlay.shape[:2], spec)
    return OpOutput(base.map(lambda frame: over(frame, overlay, top, left, spec.opacity)))
