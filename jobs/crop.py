"""The crop spec, exactly as the crop document defines it."""

from __future__ import annotations

from typing import Literal

from jobs.declare import operation
from jobs.pools import Pool
from jobs.spec import PositiveU32, Rect, TransformJob, UnitInterval

# attention: the most salient window (edges, saturation, skin tones, as sharp's attention);
# face: the window holding the faces it can (attention when there is none).
Gravity = Literal["center", "focal_point", "entropy", "attention", "face"]


@operation(
    Pool.CPU,
    example={
        "rect": {"x": 100, "y": 50, "width": 800, "height": 600},
        "format": "jpeg",
        "quality": 90,
    },
    step=True,
)
class CropJob(TransformJob, tag="crop", kw_only=True):
    """Extract `rect`, or a `width x height` window chosen by `gravity` (no scaling):
    `attention` takes the most salient part (edges, saturation, skin tones), `face` the
    window holding every face it can (the largest when not all fit; attention when there
    is none) and reports them in `result.faces`."""

    rect: Rect | None = None
    gravity: Gravity | None = None
    focal_x: UnitInterval = 0.5
    focal_y: UnitInterval = 0.5
    width: PositiveU32 | None = None
    height: PositiveU32 | None = None

    def __post_init__(self) -> None:
        if (self.rect is None) == (self.gravity is None):
            raise ValueError("give exactly one of `rect` or `gravity`")
        if self.gravity is not None and (self.width is None or self.height is None):
            raise ValueError("`width` and `height` are required with `gravity`")
        if self.rect is not None and (self.width is not None or self.height is not None):
            raise ValueError(
                "`width`/`height` apply only with `gravity`; a rect crop uses `rect.width`"
                " and `rect.height`"
            )

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        if self.rect is not None:  # a rect outside the image fails before any work
            return self.rect.width, self.rect.height
        assert self.width is not None and self.height is not None
        return min(width, self.width), min(height, self.height)  # clamped inside
