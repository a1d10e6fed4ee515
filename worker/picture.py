"""The decoded image every operation works on: one frame, or every frame of an animation.

Frames are numpy arrays, height x width x 3 (RGB) or 4 (RGBA), uint8 or uint16 (16-bit
PNG stays 16-bit through operations that keep the dtype). Colour is sRGB: the codec
converts CMYK and other ICC profiles on decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from jobs.errors import ErrorCode, FleetError

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
                f" {self.max_pixels / 1e6:g} MP")


def max_value(frame: Frame) -> int:
    return 65535 if frame.dtype == np.uint16 else 255


def split_alpha(frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
    """Colour channels and the alpha channel (None when opaque)."""
    if frame.shape[2] == 4:
        return frame[:, :, :3], frame[:, :, 3]
    return frame, None


def premultiply(frame: Frame) -> np.ndarray:
    """float32 values with colour multiplied by alpha (0..max)."""
    values = frame.astype(np.float32)
    if frame.shape[2] == 4:
        values[:, :, :3] *= values[:, :, 3:] / max_value(frame)
    return values


def unpremultiply(values: np.ndarray, dtype: np.dtype) -> Frame:
    """Back to straight alpha in `dtype`. Overshoot (Lanczos ringing) is clipped first,
    colour to at most its alpha, so the division cannot blow up."""
    if values.shape[2] == 4:
        top = 65535 if dtype == np.uint16 else 255
        alpha = np.clip(values[:, :, 3:], 0, top)
        colour = np.clip(values[:, :, :3], 0, alpha) * top
        colour = np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0)
        values = np.concatenate([colour, alpha], axis=2)
    return to_dtype(values, dtype)


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float results back to the frame's integer type."""
    top = 65535 if dtype == np.uint16 else 255
    return np.clip(np.rint(values), 0, top).astype(dtype)
