"""crop: a rect, or a gravity-chosen window. The result reports the rectangle used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.crop import CropJob
from jobs.errors import ErrorCode, FleetError
from worker.ops import OpOutput
from worker.ops import gravity as g
from worker.picture import Frame, Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def choose_box(frame: Frame, spec: CropJob) -> tuple[g.Box, dict[str, Any]]:
    """The rectangle, and what else to report (the faces gravity face found)."""
    ih, iw = frame.shape[:2]
    if spec.rect is not None:
        r = spec.rect
        if r.x + r.width > iw or r.y + r.height > ih:
            raise FleetError(
                ErrorCode.CROP_OUT_OF_BOUNDS,
                f"rect x={r.x} y={r.y} {r.width}x{r.height} exceeds the {iw}x{ih} image"
                " (after EXIF orientation)",
            )
        return g.Box(r.x, r.y, r.width, r.height), {}
    assert spec.width is not None and spec.height is not None  # enforced by the spec
    return g.placed(
        frame, spec.gravity or "center", spec.width, spec.height, spec.focal_x, spec.focal_y
    )


def crop(inputs: list[Picture], spec: CropJob, cfg: Settings) -> OpOutput:
    picture = inputs[0]
    r = spec.rect
    if r is not None and picture.source.get("window") == [r.x, r.y, r.width, r.height]:
        # The codec decoded only this window (worker.jpeg_region), checked inside the image.
        return OpOutput(picture, {"crop": g.Box(r.x, r.y, r.width, r.height).as_dict()})
    box, facts = choose_box(picture.first, spec)
    return OpOutput(picture.map(box.cut), {"crop": box.as_dict(), **facts})
