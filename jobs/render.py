"""The from-html spec: render caller HTML to an image in sandboxed headless Chromium."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from jobs.declare import operation
from jobs.errors import ErrorCode, FleetError
from jobs.pools import Pool
from jobs.prices import Flat
from jobs.rasters import Raster
from jobs.spec import DEFAULT_QUALITY, Dimension, JobSpec, ObjectKey, Quality, Rect

if TYPE_CHECKING:
    from jobs.policy import Policy


@operation(
    Pool.RENDER,
    Flat(3000),
    example={
        "html": '<div style="font:48px sans-serif;padding:40px">Hello</div>',
        "type": "png",
        "fullPage": True,
    },
    soft_time_limit=30,
    time_limit=60,
)
class FromHtmlJob(JobSpec, tag="from-html", kw_only=True):
    """Render `html` (no network, no JavaScript: inline every asset as a `data:` URI or
    `<style>`) in a `width x height` viewport; `fullPage` captures the whole page, `clip` a
    region; `omitBackground` keeps transparency (png/webp). The viewport, the clip and the
    full page are at most `FLEET_RENDER_MAX_SIDE` (16384) px a side and
    `FLEET_MAX_MEGAPIXELS` in area: a larger viewport or clip is a `400`, a larger full page
    fails the job `IMAGE_TOO_LARGE`."""

    html: str
    type: Literal["png", "jpeg", "webp"] = "png"
    full_page: bool = msgspec.field(default=False, name="fullPage")
    clip: Rect | None = None
    omit_background: bool = msgspec.field(default=False, name="omitBackground")
    width: Dimension = 800
    height: Dimension = 600
    quality: Quality = DEFAULT_QUALITY
    output: ObjectKey | None = None
    inline: bool = False

    def __post_init__(self) -> None:
        if self.clip is not None and self.full_page:
            raise ValueError("`clip` and `fullPage` exclude each other - at `$.clip`")
        if self.omit_background and self.type == "jpeg":
            raise ValueError(
                "`omitBackground` needs png or webp (JPEG has no alpha) - at `$.omitBackground`"
            )

    def admit(self, cfg: Policy) -> None:
        size = len(self.html.encode())
        if size > cfg.max_html_bytes:
            raise FleetError(
                ErrorCode.HTML_TOO_LARGE, f"html is {size} bytes; the limit is {cfg.max_html_bytes}"
            )
        _check_area(cfg, self.width, self.height, "$")
        if self.clip is not None:
            _check_area(cfg, self.clip.width, self.clip.height, "$.clip")

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        """The viewport, or the clip (a full page is measured by the worker before capture)."""
        shot = self.clip or self
        return [("the rendered page", Raster(shot.width, shot.height))]


def _check_area(cfg: Policy, width: int, height: int, path: str) -> None:
    """A raster Chromium is asked to paint: each side within its texture limit, the area
    within the megapixel limit."""
    for name, side in (("width", width), ("height", height)):
        if side > cfg.render_max_side:
            raise FleetError(
                ErrorCode.VALIDATION_ERROR,
                (
                    f"{side} px is over the render limit of {cfg.render_max_side} px a side"
                    f" (FLEET_RENDER_MAX_SIDE) - at `{path}.{name}`"
                ),
            )
    if width * height > cfg.max_megapixels * 1e6:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            (
                f"{width}x{height} is {width * height / 1e6:g} megapixels; the limit is"
                f" {cfg.max_megapixels:g} (FLEET_MAX_MEGAPIXELS)"
                f" - at `{path}.width`, `{path}.height`"
            ),
        )
