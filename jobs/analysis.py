"""Specs of the operations that return facts, not images: metadata, dominant-color.

Neither writes an image, so neither takes the output's fields (`output`, `format`,
`quality`, `inline`)."""

from __future__ import annotations

from typing import ClassVar

from jobs.declare import operation
from jobs.pools import Pool
from jobs.prices import Flat
from jobs.spec import U32, ImageJob


@operation(Pool.CPU, Flat(500), example={})
class MetadataJob(ImageJob, tag="metadata", kw_only=True):
    """Dimensions, format, colour, alpha, depth, orientation, EXIF/ICC presence, frames."""

    page: U32 = 0  # the page or frame described
    animated: bool = False  # decode every frame: their durations and loop count
    reads_timeline: ClassVar[bool] = True


@operation(Pool.CPU, Flat(200), example={})
class DominantColorJob(ImageJob, tag="dominant-color", kw_only=True):
    """The most common colour (by clustering), as `{r, g, b}` and hex."""

    page: U32 = 0  # the page or frame measured (only ever one)
