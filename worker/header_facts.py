"""What an image's header says, read without decoding a pixel (Pillow's `Image.open` is
lazy): the checks against the limits, and `Picture.source`, the facts `metadata` reports.

`codec.decode` opens every raster input here before it decodes; a metadata job stops here
(`facts_picture`): its picture's frame is a zero-strided placeholder of the decoded frame's
shape and type, so every fact reads the same as after a full decode.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image, ImageCms, ImageFile

from billing.header import header_of_bytes
from jobs.errors import ErrorCode, FleetError
from worker import formats
from worker.cancel import Canceled
from worker.formats import FROM_PILLOW
from worker.picture import Picture

ORIENTATION_TAG = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Formats whose header measures the primary image only (an image sequence in HEIF, an
# animated JPEG XL): the worker reads that image, never more than was planned.
PRIMARY_IMAGE_ONLY = frozenset({"HEIF", "JXL", "JPEG2000"})
# Modes whose decoded frame's channels and type the header alone tells (others decode).
_KNOWN_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I"})
# Raised into a decode from outside it (the soft time limit's signal, a cancel): never the
# input's fault, so every handler of "parsers raise anything" lets them through untouched.
INTERRUPTS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, Canceled)


@dataclass(frozen=True)
class Limits:
    max_megapixels: float = 100.0
    max_frames: int = 1000


@dataclass
class Opened:
    """An input opened, checked and described; no pixel decoded yet."""

    image: ImageFile.ImageFile
    fmt: str
    total: int  # frames or pages the file has (the primary image only: see above)
    orientation: int  # the EXIF turn still to apply to decoded pixels
    icc: bytes | None
    source: dict[str, Any]


def parse_failed(data: bytes, detail: str = "") -> FleetError:
    return FleetError(
        ErrorCode.IMAGE_PARSE_FAILED,
        f"input ({len(data)} bytes) is not an image this fleet can decode"
        f" ({formats.READABLE}){detail}",
    )


def check_size(width: int, height: int, frames: int, limits: Limits) -> None:
    megapixels = width * height * frames / 1e6
    if megapixels > limits.max_megapixels or frames > limits.max_frames:
        raise FleetError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"input is {width}x{height} x {frames} frame(s) = {megapixels:.1f} MP; the"
            f" limits are {limits.max_megapixels:g} MP and {limits.max_frames} frames",
        )


@contextlib.contextmanager
def corrupt_as_fleet_error() -> Iterator[None]:
    """Parsers and decoders of hostile bytes raise anything: say so in the fleet's terms."""
    try:
        yield
    except FleetError:
        raise
    except INTERRUPTS:
        raise
    except Image.DecompressionBombError as exc:  # a page or frame past the planned sizes
        raise FleetError(ErrorCode.IMAGE_TOO_LARGE, f"input is too large ({exc})") from None
    except Exception as exc:  # corrupt data: RuntimeError (AVIF), IndexError (GIF), ...
        raise FleetError(
            ErrorCode.IMAGE_PARSE_FAILED, f"input image is corrupt ({type(exc).__name__}: {exc})"
        ) from None


@functools.lru_cache(maxsize=32)  # decode asks twice per image; photos share profiles
def icc_description(icc: bytes | None) -> str | None:
    if not icc:
        return None
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except (OSError, ImageCms.PyCMSError):
        return "unreadable profile"


def png_bit_depth(data: bytes) -> int:
    return data[24] if data[:8] == PNG_SIGNATURE and len(data) > 25 else 8


def _bit_depth(data: bytes, image: Image.Image) -> int:
    """Bits per sample as stored (HEIF/JXL say so: a 10-bit HEIF decodes to 8 bits)."""
    stored = image.info.get("bit_depth")
    if image.format in ("HEIF", "JXL") and isinstance(stored, int):
        return stored
    if png_bit_depth(data) == 16 or image.mode in ("I;16", "I"):
        return 16
    return 1 if image.mode == "1" else 8


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """A PNG's chunks (type, payload), in file order, without reading the image data."""
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind, data[at + 8 : at + 8 + length]
        at += 12 + length


def _exif(data: bytes, image: Image.Image, headers_only: bool) -> Image.Exif:
    """The EXIF block. Pillow's PNG reader decodes the image to find an eXIf chunk after
    the pixels; the header-only path finds it by walking the chunks instead."""
    if headers_only and image.format == "PNG" and "exif" not in image.info:
        for kind, payload in _png_chunks(data):
            if kind == b"eXIf":
                image.info["exif"] = b"Exif\x00\x00" + payload  # as Pillow stores it
                break
        return Image.Image.getexif(image)
    return image.getexif()


def open_image(
    data: bytes, limits: Limits, animated: bool, page: int, headers_only: bool = False
) -> Opened:
    """Open, check against the limits (one frame first: before anything scans on) and
    describe. `headers_only`: never decode pixels to find a fact (see `_exif`)."""
    # Pillow's own bomb guard stays on as a second wall behind the planned limits.
    Image.MAX_IMAGE_PIXELS = int(limits.max_megapixels * 1e6)
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        check_size(width, height, 1, limits)
        total = getattr(image, "n_frames", 1)  # (GIF: walks the file to count frames)
        if image.format in PRIMARY_IMAGE_ONLY:
            total = 1  # planned and billed as one image from the header: read only that one
    except FleetError:
        raise
    except INTERRUPTS:
        raise
    except Image.DecompressionBombError:  # Pillow's wall: say what it saw, in our terms
        header = header_of_bytes(data)
        if header is not None:
            check_size(header.width, header.height, 1, limits)
        raise FleetError(
            ErrorCode.IMAGE_TOO_LARGE, f"input is over the {limits.max_megapixels:g} MP limit"
        ) from None
    except Exception:  # parsers of hostile bytes raise anything (fuzzing found several)
        raise parse_failed(data) from None
    check_size(width, height, total if animated else 1, limits)
    if page >= total:
        raise FleetError(
            ErrorCode.PAGE_OUT_OF_RANGE, f"page {page} requested; the input has {total} page(s)"
        )
    fmt = FROM_PILLOW.get(image.format or "", "png")
    with corrupt_as_fleet_error():
        exif = _exif(data, image, headers_only)
        orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
        declared = orientation  # what the file's EXIF says (what `metadata` reports)
        if fmt == "heif":  # libheif turned the image already, where the file said how
            declared = formats.heif_original_orientation(image)
            orientation = formats.heif_exif_orientation(image)
        icc = image.info.get("icc_profile")
        source = {
            "format": fmt,
            "width": width,
            "height": height,
            "mode": image.mode,
            "bit_depth": _bit_depth(data, image),
            "orientation": declared,
            "has_exif": len(exif) > 0,
            "icc": icc_description(icc),
            "frames": total,
            "loop": image.info.get("loop"),
            **({"nclx": image.info.get("nclx_profile")} if fmt == "heif" else {}),
        }
    return Opened(image, fmt, total, orientation, icc, source)


def _gif_durations(data: bytes) -> list[int]:
    """Every GIF frame's delay, from the control block before it (Pillow reads a frame's
    only after decoding the frame before)."""

    def past_sub_blocks(at: int) -> int:
        while at < len(data) and data[at]:
            at += data[at] + 1
        return at + 1

    def past_palette(flags: int) -> int:
        return 3 << ((flags & 7) + 1) if flags & 0x80 else 0

    durations, delay, at = [], 0, 13 + past_palette(data[10])
    while at + 10 <= len(data):
        if data[at] == 0x21:  # an extension: 0xF9 is the graphic control (delay in 1/100 s)
            if data[at + 1] == 0xF9:
                delay = int.from_bytes(data[at + 4 : at + 6], "little") * 10
            at = past_sub_blocks(at + 2)
        elif data[at] == 0x2C:  # an image: descriptor, palette, LZW code size, data
            at = past_sub_blocks(at + 11 + past_palette(data[at + 9]))
            durations.append(delay)
            delay = 0
        else:
            break  # the trailer
    return durations


def _webp_durations(data: bytes) -> list[int]:
    """Every WebP frame's duration from its ANMF chunk (24 bits at offset 12): what
    libwebp's animation decoder reports as the step between timestamps."""
    durations, at = [], 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if kind == b"ANMF" and size >= 16:
            durations.append(int.from_bytes(data[at + 20 : at + 23], "little"))
        at += 8 + size + (size & 1)
    return durations


def _apng_durations(data: bytes) -> list[int]:
    """Every APNG frame's delay from its fcTL chunk, as Pillow computes it (num/den s)."""
    durations = []
    for kind, payload in _png_chunks(data):
        if kind == b"fcTL" and len(payload) >= 24:
            num, den = struct.unpack(">HH", payload[20:24])
            durations.append(int(num / (den or 100) * 1000))
    return durations


def _durations(data: bytes, opened: Opened) -> list[int] | None:
    """Frame durations without decoding a frame, or None where the format needs one."""
    image, total = opened.image, opened.total
    if total <= 1:
        return []
    if image.format == "GIF":
        durations = _gif_durations(data)
        return durations if len(durations) == total else None
    if image.format == "WEBP":
        durations = _webp_durations(data)
        return durations if len(durations) == total else None
    if image.format == "PNG":
        durations = _apng_durations(data)
        return durations if len(durations) == total else None
    if image.format in ("TIFF", "MPO"):  # pages or pictures, not an animation: no durations
        return [0] * total
    return None


def _placeholder_shape(data: bytes, image: Image.Image) -> tuple[int, np.dtype] | None:
    """The channels and type a full decode gives this image, or None if unsure."""
    if image.mode not in _KNOWN_MODES:
        return None
    if image.mode in ("I;16", "I"):
        return 3, np.dtype(np.uint16)  # 16-bit grey, expanded to RGB
    if image.format == "PNG" and png_bit_depth(data) == 16:  # OpenCV's decode: per colour type
        alpha = data[25] in (4, 6) or "transparency" in image.info  # (tRNS too)
        return (4 if alpha else 3), np.dtype(np.uint16)
    alpha = "A" in image.getbands() or "transparency" in image.info
    return (4 if alpha and image.mode != "CMYK" else 3), np.dtype(np.uint8)


def facts_picture(data: bytes, limits: Limits, page: int = 0) -> Picture | None:
    """A metadata job's input read from its header only: every `Picture.source` fact a
    full decode reports, with a placeholder frame (no memory) of the upright size, channels
    and type. None where a fact needs pixels: the caller decodes as before."""
    if page > 0:
        return None  # another page's own size and mode: read as the decode reads it
    opened = open_image(data, limits, animated=False, page=page, headers_only=True)
    image = opened.image
    with corrupt_as_fleet_error():
        shape = _placeholder_shape(data, image)
        durations = _durations(data, opened)
    if shape is None or durations is None:
        return None
    channels, dtype = shape
    width, height = image.size
    if opened.orientation in (5, 6, 7, 8):
        width, height = height, width
    frame = np.broadcast_to(np.zeros((1, 1, channels), dtype), (height, width, channels))
    return Picture(
        frames=[frame],
        format=opened.fmt,
        source=opened.source | {"durations": durations},
        max_pixels=int(limits.max_megapixels * 1e6),
    )
