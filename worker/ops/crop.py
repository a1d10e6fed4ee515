"""crop: a rect, or a gravity-chosen window. The result reports the rectangle used."""

from __future__ import annotations

from PIL import Image

from jobs.crop import CropJob
from jobs.errors import ErrorCode, FleetError
from worker.ops import OpOutput
from worker.ops import gravity as g


def choose_box(image: Image.Image, spec: CropJob) -> g.Box:
    if spec.rect is not None:
        r = spec.rect
        iw, ih = image.size
        if r.x + r.width > iw or r.y + r.height > ih:
            raise FleetError(
                ErrorCode.CROP_OUT_OF_BOUNDS,
                f"rect x={r.x} y={r.y} {r.width}x{r.height} exceeds the {iw}x{ih} image"
                " (after EXIF orientation)",
            )
        return g.Box(r.x, r.y, r.width, r.height)
    assert spec.width is not None and spec.height is not None  # enforced by the spec
    g.check_fits(spec.width, spec.height, image.size)
    if spec.gravity == "center":
        return g.center(image.size, spec.width, spec.height)
    if spec.gravity == "focal_point":
        return g.focal_point(image.size, spec.width, spec.height, spec.focal_x, spec.focal_y)
    return g.entropy(image, spec.width, spec.height)


def crop(image: Image.Image, spec: CropJob) -> OpOutput:
    box = choose_box(image, spec)
    return OpOutput(image.crop(box.pillow()), {"crop": box.as_dict()})
