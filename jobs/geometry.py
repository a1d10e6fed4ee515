"""Specs of the operations that change an image's geometry: resize, rotate, trim, extend."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from jobs.crop import Gravity
from jobs.spec import U32, Byte, Color, Dimension, ImageJob, UnitInterval

Fit = Literal["cover", "contain", "fill", "inside", "outside"]
ExtendWith = Literal["background", "copy", "repeat", "mirror"]


class ResizeJob(ImageJob, tag="resize", kw_only=True):
    """Resize to `width` and/or `height`; `fit` says how the image fills that box (as sharp)."""

    width: Dimension | None = None
    height: Dimension | None = None
    fit: Fit = "cover"
    gravity: Gravity = "center"  # which part `cover` keeps
    focal_x: UnitInterval = 0.5
    focal_y: UnitInterval = 0.5
    background: Color | None = None  # `contain` padding; default transparent black or white

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            raise ValueError("give `width`, `height` or both - at `$`")

    def decode_scale(self, width: int, height: int) -> float:
        """How small the (upright) input may be decoded and still resize exactly: the
        scale of the larger of the two axis ratios the fit needs (at most 1)."""
        ratios = [t / s for t, s in ((self.width, width), (self.height, height)) if t]
        need = min(ratios) if self.fit in ("inside", "contain") else max(ratios)
        return min(1.0, need)


class RotateJob(ImageJob, tag="rotate", kw_only=True):
    """Rotate clockwise by `angle` degrees (any angle; others than multiples of 90 expand
    the canvas, filled with `background`), then `flip` (vertical) and/or `flop` (horizontal)."""

    angle: Annotated[float, Meta(ge=-3600, le=3600)] = 0.0
    flip: bool = False
    flop: bool = False
    background: Color | None = None

    def __post_init__(self) -> None:
        if self.angle == 0 and not self.flip and not self.flop:
            raise ValueError("give a non-zero `angle`, `flip` or `flop` - at `$`")


class TrimJob(ImageJob, tag="trim", kw_only=True):
    """Cut away borders that match the top-left pixel within `threshold`."""

    threshold: Byte = 10


class ExtendJob(ImageJob, tag="extend", kw_only=True):
    """Pad the image on any side with `background` or copied/repeated/mirrored pixels."""

    top: U32 = 0
    bottom: U32 = 0
    left: U32 = 0
    right: U32 = 0
    background: Color | None = None
    extend_with: ExtendWith = msgspec.field(default="background", name="extendWith")

    def __post_init__(self) -> None:
        if not (self.top or self.bottom or self.left or self.right):
            raise ValueError("give at least one positive `top`, `bottom`, `left` or `right`"
                             " - at `$`")
