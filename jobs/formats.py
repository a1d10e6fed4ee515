"""Specs of the operations that only re-encode: convert, compress, exif-strip."""

from __future__ import annotations

from typing import Literal

from jobs.spec import ImageJob, Quality


class ConvertJob(ImageJob, tag="convert", kw_only=True):
    """Re-encode as `format`; with `animated`, gif/webp targets keep every frame."""

    format: Literal["png", "jpeg", "webp", "avif", "gif"]  # required here; gif for animations


class CompressJob(ImageJob, tag="compress", kw_only=True):
    """Re-encode in the current format at `quality`."""

    quality: Quality  # required here


class ExifStripJob(ImageJob, tag="exif-strip", kw_only=True):
    """Auto-orient, then drop EXIF, GPS, XMP and IPTC (outputs never carry metadata)."""
