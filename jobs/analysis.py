"""Specs of the operations that return facts, not images: metadata, dominant-color, placeholder.

None writes an image, so none takes the output's fields (`output`, `format`, `quality`,
`inline`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from jobs.declare import operation
from jobs.pools import Pool
from jobs.prices import Flat
from jobs.rasters import PageSizes, Raster, dct_shrink
from jobs.spec import U32, ImageJob

# Each megapixel a flat read decodes past FLEET_FLAT_PRICE_MAX_MEGAPIXELS: a third of the
# per-MP operations' 300 (these decode, none encodes; docs/billing.md has the figures).
OVER_CEILING_PER_MP = 100
# dominant-color measures a copy that fits this square (a JPEG shrinks on load to it).
DOMINANT_SIDE = 256


@operation(Pool.CPU, Flat(500, OVER_CEILING_PER_MP), example={})
class MetadataJob(ImageJob, tag="metadata", kw_only=True):
    """Dimensions, format, colour, alpha, depth, orientation, EXIF/ICC presence, frames.
    Read from the header alone (flat, whatever the size) unless `animated` or a later `page`
    makes it decode: then it is metered over the ceiling like the other reads."""

    page: U32 = 0  # the page or frame described
    animated: bool = False  # decode every frame: their durations and loop count
    reads_timeline: ClassVar[bool] = True

    @property
    def decodes_pixels(self) -> bool:
        # The header tells the first page's facts; every frame or a later page is decoded.
        return self.animated or self.page > 0


class ShrinkingRead(ImageJob, kw_only=True):
    """A read of a small working copy: a JPEG decodes at 1/2, 1/4 or 1/8 size where that
    still covers it (jobs.rasters.dct_shrink, as the codec decodes), and that is metered."""

    def metered_raster(self, index: int, header: PageSizes) -> Raster:
        raster = self.input_raster(index, header)
        if index > 0 or header.format != "jpeg":
            return raster
        width, height = raster.width, raster.height
        shrink = dct_shrink(width, height, self.decode_scale(width, height))
        return Raster(-(-width // shrink), -(-height // shrink), raster.frames)


@operation(Pool.CPU, Flat(200, OVER_CEILING_PER_MP), example={})
class DominantColorJob(ShrinkingRead, tag="dominant-color", kw_only=True):
    """The most common colour (by clustering), as `{r, g, b}` and hex."""

    page: U32 = 0  # the page or frame measured (only ever one)

    def decode_scale(self, width: int, height: int) -> float:
        return min(1.0, DOMINANT_SIDE / max(width, height))


# The sides of placeholder's working copy: ThumbHash's reference encodes at most 100x100.
PLACEHOLDER_SIDE = 100
ComponentCount = Annotated[int, Meta(ge=1, le=9)]


class Components(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """BlurHash's cosine terms across (`x`) and down (`y`): 1 to 9 each."""

    x: ComponentCount = 4
    y: ComponentCount = 3


@operation(Pool.CPU, Flat(200, OVER_CEILING_PER_MP), example={"components": {"x": 4, "y": 3}})
class PlaceholderJob(ShrinkingRead, tag="placeholder", kw_only=True):
    """Tiny placeholders of the upright image: `blurhash` (the BlurHash string, with
    `components` terms across and down) and `thumbhash` (the ThumbHash bytes, base64). Both
    are computed from one copy shrunk to fit 100x100 (area-averaged, alpha-weighted; JPEGs
    shrink on load; tiny ones repeat pixels). ThumbHash keeps alpha; BlurHash has none, so
    transparent parts take the visible pixels' average colour (as in ThumbHash's colours)."""

    page: U32 = 0  # the page or frame measured (only ever one)
    components: Components = Components()

    def decode_scale(self, width: int, height: int) -> float:
        return min(1.0, PLACEHOLDER_SIDE / max(width, height))
