"""Specs of the operations that only re-encode: convert, compress, exif-strip."""

from __future__ import annotations

from typing import Literal

from jobs.declare import operation
from jobs.pools import Pool
from jobs.spec import QualityChoice, TransformJob


@operation(Pool.CPU, example={"format": "webp", "quality": 82}, step=True)
class ConvertJob(TransformJob, tag="convert", kw_only=True):
    """Re-encode as `format` at `quality` (default 85; in a pipeline, the pipeline's); with
    `animated`, gif/webp targets keep every frame. `"format": "auto"` with no quality
    searches the quality too (the smallest file meeting `ssim`)."""

    # Redeclared (so a pipeline step takes them): format required, and gif allowed;
    # quality None for 85 at the top level, the pipeline's in a step.
    format: Literal["png", "jpeg", "webp", "avif", "jxl", "gif", "auto"]  # type: ignore[assignment]
    quality: QualityChoice | None = None  # type: ignore[assignment]


@operation(Pool.CPU, example={"quality": 70}, step=True)
class CompressJob(TransformJob, tag="compress", kw_only=True):
    """Re-encode in the current format at `quality`."""

    quality: QualityChoice  # required here ("auto": the smallest file meeting `ssim`)


@operation(Pool.CPU, example={}, step=True)
class ExifStripJob(TransformJob, tag="exif-strip", kw_only=True):
    """Auto-orient, then drop EXIF, GPS, XMP and IPTC (outputs never carry metadata)."""
