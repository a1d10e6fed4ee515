"""Specs of the operations that change an image's geometry: resize, rotate, trim, extend."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from jobs.crop import Gravity
from jobs.declare import operation
from jobs.pools import Pool
from jobs.spec import U32, Byte, Color, Dimension, TransformJob, UnitInterval

Fit = Literal["cover", "contain", "fill", "inside", "outside"]
ExtendWith = Literal["background", "copy", "repeat", "mirror"]


@operation(Pool.CPU, example={"width": 720, "fit": "inside"}, step=True)
class ResizeJob(TransformJob, tag="resize", kw_only=True):
    """Resize to `width` and/or `height`; `fit` says how the image fills that box (as sharp)."""

    width: Dimension | None = None
    height: Dimension | None = None
    fit: Fit = "cover"
    gravity: Gravity = "center"  # which part `cover` keeps (face: reports `result.faces`)
    focal_x: UnitInterval = 0.5
    focal_y: UnitInterval = 0.5
    background: Color | None = None  # `contain` padding; default transparent black or white

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            raise ValueError("give `width`, `height` or both")

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the whole image is scaled to (before cover's window or contain's
        padding)."""
        if self.height is None:
            assert self.width is not None
            return self.width, _round(height * self.width / width)
        if self.width is None:
            return _round(width * self.height / height), self.height
        bw, bh = self.width, self.height
        if self.fit == "fill":
            return bw, bh
        # Integer cross-multiplication: is the box relatively wider than the image?
        wider = bw * height >= bh * width
        # cover/outside: the box's relatively larger side rules; contain/inside: the smaller.
        if wider if self.fit in ("cover", "outside") else not wider:
            return bw, _round(height * bw / width)
        return _round(width * bh / height), bh

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        if self.width and self.height and self.fit in ("cover", "contain"):
            return self.width, self.height  # cover cuts a window, contain pads to the box
        return self.scaled_size(width, height)

    def stages(self, width: int, height: int) -> list[tuple[str, tuple[int, int]]]:
        """Cover scales the whole image before it cuts the window: that is made too."""
        scaled, output = self.scaled_size(width, height), self.output_size(width, height)
        made = [("the resize's scaled image", scaled)] if scaled != output else []
        return [*made, ("the resize output", output)]

    def decode_scale(self, width: int, height: int) -> float:
        """How small the (upright) input may be decoded and still resize exactly: the
        scale of the larger of the two axis ratios the fit needs (at most 1)."""
        ratios = [t / s for t, s in ((self.width, width), (self.height, height)) if t]
        need = min(ratios) if self.fit in ("inside", "contain") else max(ratios)
        return min(1.0, need)


def _round(value: float) -> int:
    return max(1, math.floor(value + 0.5))  # nearest, halves up; never 0


def rotated_size(width: int, height: int, angle: float) -> tuple[int, int]:
    """Bounding box of a width x height rectangle rotated by `angle` degrees, rounded out."""
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    # The epsilon keeps float noise (e.g. 99.99999999) from adding a whole pixel.
    return (
        max(1, math.ceil(width * c + height * s - 1e-6)),
        max(1, math.ceil(width * s + height * c - 1e-6)),
    )


@operation(Pool.CPU, example={"angle": 90}, step=True)
class RotateJob(TransformJob, tag="rotate", kw_only=True):
    """Rotate clockwise by `angle` degrees (any angle; others than multiples of 90 expand
    the canvas, filled with `background`), then `flip` (vertical) and/or `flop` (horizontal)."""

    angle: Annotated[float, Meta(ge=-3600, le=3600)] = 0.0
    flip: bool = False
    flop: bool = False
    background: Color | None = None

    def __post_init__(self) -> None:
        if self.angle == 0 and not self.flip and not self.flop:
            raise ValueError("give a non-zero `angle`, `flip` or `flop`")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return rotated_size(width, height, self.angle % 360)


@operation(Pool.CPU, example={"threshold": 10}, step=True)
class TrimJob(TransformJob, tag="trim", kw_only=True):
    """Cut away borders that match the top-left pixel within `threshold`."""

    threshold: Byte = 10


@operation(Pool.CPU, example={"top": 40, "bottom": 40, "background": "#ffffff"}, step=True)
class ExtendJob(TransformJob, tag="extend", kw_only=True):
    """Pad the image on any side with `background` or copied/repeated/mirrored pixels."""

    top: U32 = 0
    bottom: U32 = 0
    left: U32 = 0
    right: U32 = 0
    background: Color | None = None
    extend_with: ExtendWith = msgspec.field(default="background", name="extendWith")

    def __post_init__(self) -> None:
        if not (self.top or self.bottom or self.left or self.right):
            raise ValueError("give at least one positive `top`, `bottom`, `left` or `right`")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width + self.left + self.right, height + self.top + self.bottom
