"""Decode and encode at the edges of every image operation.

Decoding checks the header against `max_megapixels` before any pixel is decoded (image
bombs), then applies EXIF orientation so operations always see the upright image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from jobs.errors import ErrorCode, FleetError

# We check sizes ourselves, from the header, with a configurable limit.
Image.MAX_IMAGE_PIXELS = None

CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF",
                   "tiff": "TIFF", "gif": "GIF"}
_FROM_PILLOW = {"MPO": "jpeg", "JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "AVIF": "avif",
                "TIFF": "tiff", "GIF": "gif"}


@dataclass
class Decoded:
    image: Image.Image  # upright (EXIF orientation applied), first frame
    format: str  # our name of the input's format, e.g. "jpeg"; "png" for others
    frames: int
    icc_profile: bytes | None


def decode(data: bytes, max_megapixels: float) -> Decoded:
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise FleetError(
            ErrorCode.IMAGE_PARSE_FAILED,
            f"input ({len(data)} bytes) is not an image this fleet can decode"
            " (PNG, JPEG, WebP, AVIF, TIFF, GIF, BMP)",
        ) from None
    width, height = image.size
    frames = getattr(image, "n_frames", 1)
    megapixels = width * height * frames / 1e6
    if megapixels > max_megapixels:
        raise FleetError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"input is {width}x{height} x {frames} frame(s) = {megapixels:.1f} MP;"
            f" the limit is {max_megapixels:g} MP",
        )
    try:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise FleetError(ErrorCode.IMAGE_PARSE_FAILED, f"input image is corrupt: {exc}") from None
    return Decoded(
        image=upright,
        format=_FROM_PILLOW.get(image.format or "", "png"),
        frames=frames,
        icc_profile=image.info.get("icc_profile"),
    )


def _flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _prepare(image: Image.Image, fmt: str) -> Image.Image:
    """Convert to a mode the target format can store, keeping alpha where it can."""
    mode = image.mode
    if fmt == "jpeg":
        if _has_alpha(image):
            return _flatten(image)
        return image if mode in ("L", "RGB", "CMYK") else image.convert("RGB")
    if fmt in ("webp", "avif"):
        return image.convert("RGBA" if _has_alpha(image) else "RGB")
    if fmt == "png" and mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        return image
    if fmt in ("tiff", "gif"):
        return image
    return image.convert("RGBA" if _has_alpha(image) else "RGB")


def encode(
    image: Image.Image, fmt: str, quality: int, icc_profile: bytes | None, avif_speed: int = 6
) -> bytes:
    prepared = _prepare(image, fmt)
    options: dict[str, object] = {}
    # An ICC profile only describes the pixels if the colour model did not change.
    if icc_profile and (prepared.mode == "CMYK") == (image.mode == "CMYK"):
        options["icc_profile"] = icc_profile
    if fmt == "jpeg":
        options.update(quality=quality, optimize=False)
    elif fmt == "webp":
        options.update(quality=quality, method=4)
    elif fmt == "avif":
        options.update(quality=quality, speed=avif_speed)
    elif fmt == "png":
        options.update(compress_level=6)
    out = io.BytesIO()
    prepared.save(out, format=_PILLOW_FORMATS[fmt], **options)
    return out.getvalue()


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, fmt)
