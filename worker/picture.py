"""The decoded image every operation works on: one frame, or every frame of an animation.

Frames are numpy arrays, height x width x 3 (RGB) or 4 (RGBA), uint8 or uint16 (16-bit
PNG stays 16-bit through operations that keep the dtype). Colour is sRGB: the codec
converts CMYK and other ICC profiles on decode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from jobs.errors import ErrorCode, FleetError
from worker.budget import STRIP_PIXELS

Frame = np.ndarray


@dataclass
class Picture:
    frames: list[Frame]
    format: str  # the source format ("jpeg", "png", ...): the default output format
    durations: list[int] = field(default_factory=list)  # ms per frame, animations only
    loop: int | None = None
    source: dict[str, Any] = field(default_factory=dict)  # header facts (see `metadata`)
    max_pixels: int = 100_000_000  # the output limit (the input limit travels with the image)

    @property
    def first(self) -> Frame:
        return self.frames[0]

    @property
    def width(self) -> int:
        return int(self.first.shape[1])

    @property
    def height(self) -> int:
        return int(self.first.shape[0])

    @property
    def has_alpha(self) -> bool:
        return self.first.shape[2] == 4

    def map(self, change: Callable[[Frame], Frame]) -> Picture:
        """The same picture with `change` applied to every frame."""
        return replace(self, frames=[change(frame) for frame in self.frames])

    def with_frames(self, frames: list[Frame]) -> Picture:
        return replace(self, frames=frames)

    def check_output(self, width: int, height: int, frames: int | None = None) -> None:
        """Refuse (before allocating) an output bigger than the input limit allows."""
        count = len(self.frames) if frames is None else frames
        if width * height * count > self.max_pixels:
            raise FleetError(
                ErrorCode.IMAGE_TOO_LARGE,
                f"the output would be {width}x{height} x {count} frame(s) ="
                f" {width * height * count / 1e6:.1f} MP; the limit is"
                f" {self.max_pixels / 1e6:g} MP",
            )


def max_value(frame: Frame) -> int:
    return 65535 if frame.dtype == np.uint16 else 255


def split_alpha(frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
    """Colour channels and the alpha channel (None when opaque)."""
    if frame.shape[2] == 4:
        return frame[:, :, :3], frame[:, :, 3]
    return frame, None


def strips(frame: np.ndarray) -> Iterator[slice]:
    """Row ranges of about STRIP_PIXELS pixels: pointwise float work done a strip at a time
    keeps its temporaries to a few MB whatever the frame's size."""
    height, width = frame.shape[:2]
    rows = max(1, STRIP_PIXELS // max(1, width))
    return (slice(y, min(y + rows, height)) for y in range(0, height, rows))


def premultiplied_plane(frame: Frame, channel: int) -> np.ndarray:
    """One channel as float32 (0..max), colour multiplied by alpha when there is alpha."""
    plane = np.empty(frame.shape[:2], np.float32)
    premultiply = frame.shape[2] == 4 and channel < 3
    for rows in strips(frame):
        plane[rows] = frame[rows, :, channel]
        if premultiply:
            plane[rows] *= frame[rows, :, 3].astype(np.float32) / max_value(frame)
    return plane


def filter_planes(
    frame: Frame, apply: Callable[[np.ndarray, int], np.ndarray], add_alpha: bool = False
) -> Frame:
    """`apply(plane, channel)` - a linear filter or resampling, float32 plane in and out,
    free to overwrite its argument - on each channel with colour premultiplied by alpha
    (so the colour of transparent pixels does not bleed), then back to straight alpha in
    the frame's dtype. One plane at a time: a float copy of a whole RGBA frame would be 16
    bytes a pixel; this holds the filtered alpha, one colour plane and the output.
    `add_alpha` gives an opaque frame an (opaque) alpha channel first."""
    top = max_value(frame)
    alpha = None
    if frame.shape[2] == 4 or add_alpha:
        source = (
            premultiplied_plane(frame, 3)
            if frame.shape[2] == 4
            else np.full(frame.shape[:2], top, np.float32)
        )
        alpha = apply(source, 3)
        del source
        # Overshoot (Lanczos ringing) is clipped first, colour to at most its alpha, so
        # the division cannot blow up.
        np.clip(alpha, 0, top, out=alpha)
    out: np.ndarray | None = None
    for channel in range(3):
        values = apply(premultiplied_plane(frame, channel), channel)
        if out is None:
            out = np.empty((*values.shape, 3 if alpha is None else 4), frame.dtype)
        _store(out, channel, values, alpha)
        del values  # before the next plane is made
    assert out is not None
    if alpha is not None:
        _store(out, 3, alpha, None)
    return out


def _store(out: Frame, channel: int, values: np.ndarray, alpha: np.ndarray | None) -> None:
    """One float plane into `out`'s channel, unpremultiplied by `alpha` when given."""
    top = max_value(out)
    for rows in strips(values):
        part = values[rows]
        if alpha is not None:
            part = np.clip(part, 0, alpha[rows]) * top
            part = np.divide(part, alpha[rows], out=np.zeros_like(part), where=alpha[rows] > 0)
        out[rows, :, channel] = to_dtype(part, out.dtype)


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float results back to the frame's integer type."""
    top = 65535 if dtype == np.uint16 else 255
    return np.clip(np.rint(values), 0, top).astype(dtype)
