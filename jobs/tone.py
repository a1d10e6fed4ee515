"""Specs of the operations that change pixel values: blur, sharpen, grayscale, adjust."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from jobs.declare import operation
from jobs.pools import Pool
from jobs.spec import RGB, TransformJob


@operation(Pool.CPU, example={"sigma": 3}, step=True)
class BlurJob(TransformJob, tag="blur", kw_only=True):
    """Gaussian blur with standard deviation `sigma` pixels."""

    sigma: Annotated[float, Meta(ge=0.3, le=1000)] = 2.0


@operation(Pool.CPU, example={"sigma": 1.5}, step=True)
class SharpenJob(TransformJob, tag="sharpen", kw_only=True):
    """Unsharp mask: add back the detail a Gaussian of `sigma` removes."""

    sigma: Annotated[float, Meta(ge=0.3, le=10)] = 1.0


@operation(Pool.CPU, example={}, step=True)
class GrayscaleJob(TransformJob, tag="grayscale", kw_only=True):
    """Luminance only (alpha kept)."""


@operation(
    Pool.CPU,
    example={"brightness": 1.1, "saturation": 1.3, "tint": {"r": 255, "g": 240, "b": 200}},
    step=True,
)
class AdjustJob(TransformJob, tag="adjust", kw_only=True):
    """sharp's modulate bundle: multiply brightness and saturation, rotate hue, add
    lightness; then optionally negate and tint."""

    brightness: Annotated[float, Meta(ge=0, le=10)] | None = None
    saturation: Annotated[float, Meta(ge=0, le=10)] | None = None
    hue: Annotated[float, Meta(ge=-360, le=360)] | None = None
    lightness: Annotated[float, Meta(ge=-100, le=100)] | None = None
    negate: bool = False
    tint: RGB | None = None

    def __post_init__(self) -> None:
        if (
            self.brightness is None
            and self.saturation is None
            and self.hue is None
            and self.lightness is None
            and not self.negate
            and self.tint is None
        ):
            raise ValueError(
                "give at least one of `brightness`, `saturation`, `hue`,"
                " `lightness`, `negate` or `tint`"
            )
