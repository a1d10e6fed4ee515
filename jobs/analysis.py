"""Specs of the operations that return facts, not images: metadata, dominant-color."""

from __future__ import annotations

from typing import ClassVar

from jobs.spec import ImageJob


class MetadataJob(ImageJob, tag="metadata", kw_only=True):
    """Dimensions, format, colour, alpha, depth, orientation, EXIF/ICC presence, frames."""

    reads_timeline: ClassVar[bool] = True
    makes_image: ClassVar[bool] = False


class DominantColorJob(ImageJob, tag="dominant-color", kw_only=True):
    """The most common colour (by clustering), as `{r, g, b}` and hex."""

    makes_image: ClassVar[bool] = False
