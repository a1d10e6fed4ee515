"""The Pillow plugins the codec decodes and encodes through, loaded once per process, where
the codec needs them (importing a plugin registers its format with Pillow globally).

HEIF/HEIC: pillow-heif (libheif applies the `irot`/`imir`/`clap` transforms). JPEG XL:
pillow-jxl-plugin. JPEG 2000: Pillow's own OpenJPEG. AVIF: Pillow's own; pillow-avif-plugin
only where the installed Pillow lacks AVIF, since importing it replaces Pillow's handlers.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from PIL import Image, features

# Pillow's format names -> the codec's ("jp2" covers JP2 files and raw codestreams).
FROM_PILLOW = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "TIFF": "tiff",
    "GIF": "gif",
    "HEIF": "heif",
    "JXL": "jxl",
    "JPEG2000": "jp2",
}
# What IMAGE_PARSE_FAILED says the fleet reads.
READABLE = "PNG, JPEG, WebP, AVIF, TIFF, GIF, BMP, HEIC/HEIF, JPEG XL, JPEG 2000, SVG, PDF"


@functools.cache
def load_avif_plugin() -> None:
    """AVIF through pillow-avif-plugin. Called by `ensure_plugins` only when Pillow has no
    AVIF of its own (tests call it in a subprocess to force that path)."""
    importlib.import_module("pillow_avif")


@functools.cache
def ensure_plugins() -> None:
    """Register the decoders and encoders of the formats Pillow does not carry itself."""
    import pillow_heif
    import pillow_jxl  # noqa: F401  (registers JXL with Pillow on import)

    # Thumbnails off: a draft() never swaps in an embedded thumbnail (whose pixels the
    # file's author chose) for the image itself.
    pillow_heif.register_heif_opener(thumbnails=False)
    if not features.check("avif"):
        load_avif_plugin()


def heif_exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation still to apply to a decoded HEIF image. libheif applies the
    `irot`/`imir` transforms, and pillow-heif resets the EXIF tag to 1 (its original value
    goes to info["original_orientation"]), since writers put the same turn in both: the
    tag is applied here only for an image that has no transform of its own, as for JPEG."""
    original = int(image.info.get("original_orientation") or 1)
    if original == 1:
        return 1
    try:  # pillow-heif keeps the image's transforms on its (private) libheif handle
        heif: Any = image
        transforms = heif._heif_file[image.tell()]._c_image.transformations
    except (AttributeError, IndexError, TypeError):
        return 1  # unknown: trust the binding, which already turned what it knew of
    turned = any(step[0] in ("irot", "imir") for step in transforms)
    return 1 if turned else original


def heif_original_orientation(image: Image.Image) -> int:
    """The orientation the file's EXIF declared (what `metadata` reports)."""
    return int(image.info.get("original_orientation") or 1)
