"""Decode bytes into a Picture and encode a Picture into bytes, at the edges of every job
(encoding itself is worker.encoding).

Decoding checks the header against the limits before any pixel is decoded (image bombs),
applies EXIF orientation, converts CMYK and non-sRGB ICC profiles to sRGB, keeps alpha,
keeps 16-bit PNG at 16 bits, and reads every frame of an animation when asked.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageCms, ImageFile

from billing.header import Header
from jobs.rasters import BASE_DPI, dct_shrink
from worker import formats, vector
from worker.encoding import CONTENT_TYPES, encode, extension
from worker.header_facts import (
    INTERRUPTS,
    PRIMARY_IMAGE_ONLY,
    Limits,
    check_size,
    corrupt_as_fleet_error,
    icc_description,
    open_image,
    parse_failed,
    png_bit_depth,
)
from worker.jpeg_region import Window, decode_window
from worker.picture import Frame, Picture

# Encoding lives in worker.encoding; callers reach both directions through this module.
__all__ = [
    "CONTENT_TYPES",
    "PRIMARY_IMAGE_ONLY",
    "Limits",
    "decode",
    "encode",
    "extension",
    "probe",
]

_SRGB = ImageCms.createProfile("sRGB")


def _orient(frame: Frame, orientation: int) -> Frame:
    """Apply an EXIF orientation (TIFF 6.0 table) so the frame is upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    change = ops.get(orientation)
    return np.ascontiguousarray(change(frame)) if change else frame


def _foreign_profile(mode: str, icc: bytes | None) -> bool:
    """Whether pixels need converting to sRGB through their ICC profile."""
    return (
        bool(icc)
        and mode in ("CMYK", "RGB", "RGBA")
        and ("srgb" not in (icc_description(icc) or "").lower())
    )


def _jpeg_pixels(data: bytes, width: int, height: int, shrink: int) -> Frame:
    """A YCbCr JPEG decoded by libjpeg-turbo straight into an array (simplejpeg), at
    1/shrink size: 3-4 ms less than Pillow plus its conversion for sharp's benchmark
    photo. Strict: a truncated or damaged file raises instead of decoding grey."""
    return simplejpeg.decode_jpeg(
        data, "RGB", min_width=-(-width // shrink), min_height=-(-height // shrink)
    )


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """An RGB/RGBA image in sRGB: ICC-converted where a (non-sRGB) profile says how."""
    alpha = "A" in image.getbands() or "transparency" in image.info
    if icc is not None and _foreign_profile(image.mode, icc):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            base = image.convert("RGB") if image.mode == "RGBA" else image
            converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
            if converted is not None:
                if image.mode == "RGBA":
                    converted.putalpha(image.getchannel("A"))
                return converted
        except (OSError, ImageCms.PyCMSError):
            pass  # a broken profile: fall back to the plain conversion below
    if image.mode == "I;16" or image.mode == "I":
        return image  # 16-bit grey: kept as is, expanded to RGB by _frame_of
    mode = "RGBA" if alpha else "RGB"
    return image if image.mode == mode else image.convert(mode)  # no copy when it is


def _pixels(image: Image.Image) -> Frame:
    """An 8-bit RGB(A) image's pixels in one pass (numpy's __array_interface__ goes
    through tobytes: 70 chunks and a join for a 1.5 MP frame). The array is read-only:
    operations are pure and copy before they write, so no copy is made here."""
    image.load()
    channels = len(image.getbands())
    size = image.width * image.height * channels
    encoder = Image._getencoder(image.mode, "raw", image.mode)
    try:
        encoder.setimage(image.im, (0, 0, *image.size))
        _, status, raw = encoder.encode(size + 1)  # room for all of it: one call
    finally:
        encoder.cleanup()
    if status != 1 or len(raw) != size:
        return np.asarray(image).copy()  # an odd mode: the general path
    return np.frombuffer(raw, np.uint8).reshape(image.height, image.width, channels)


def _frame_of(image: Image.Image) -> Frame:
    if image.mode in ("I;16", "I"):
        grey = (
            np.asarray(image).astype(np.uint16)
            if image.mode == "I;16"
            else np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        )
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("RGB", "RGBA") and image.width and image.height:
        return _pixels(image)
    return np.asarray(image).copy()


def _decode_16bit_png(data: bytes) -> Frame:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise parse_failed(data)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 2:  # grey + alpha
        return np.dstack([array[:, :, 0]] * 3 + [array[:, :, 1]])
    code = cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(array, code)


def _timeline(image: Image.Image, total: int) -> list[int]:
    """Every frame's duration in ms (WebP only knows a frame's duration once loaded)."""
    durations = []
    for index in range(total):
        image.seek(index)
        if image.format == "WEBP":
            image.load()
        durations.append(int(image.info.get("duration", 0) or 0))
    return durations


def _decode_vector(data: bytes, kind: str, limits: Limits, page: int, density: float) -> Picture:
    def check(width: int, height: int) -> None:
        check_size(width, height, 1, limits)

    frame, source = vector.decode(data, kind, page, density, check)
    return Picture(
        frames=[frame],
        format=kind,
        source=source,
        max_pixels=int(limits.max_megapixels * 1e6),
    )


def probe(data: bytes) -> Header:
    """Pillow's own reading of a header that billing.header does not parse (no pixels are
    decoded); only the first page's size is known, and that is what decode checks. A PDF:
    PDFium's page count and first page size; an SVG's size only billing.header reads."""
    formats.ensure_plugins()
    fmt = vector.kind(data)
    if fmt is not None:
        return vector.header(data, fmt, 0)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Header((image.format or "unknown").lower(), *image.size, 1)
    except INTERRUPTS:
        raise
    except Exception:  # parsers of hostile bytes raise anything
        raise parse_failed(data) from None


def _cut(
    data: bytes, image: ImageFile.ImageFile, window: Window | None, orientation: int
) -> Image.Image | None:
    """The upright `window` of a JPEG, decoded down to its last row only; None when there
    is no window, it is not inside the image (the crop's error to report) or the stream
    ends early (the full decode's error to report)."""
    width, height = image.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if window is None or window[0] + window[2] > width or window[1] + window[3] > height:
        return None
    return decode_window(data, image, window, orientation)


def decode(
    data: bytes,
    limits: Limits,
    animated: bool = False,
    page: int = 0,
    timeline: bool = False,
    scale_for: Callable[[int, int], float] | None = None,
    density: float = BASE_DPI,
    window: Window | None = None,
) -> Picture:
    """`density`: the dpi an SVG or PDF page is drawn at (its declared size is at 72).
    `window`: the upright box a crop keeps; a JPEG decodes only the rows it needs, and the
    picture is that box (`source["window"]` says so)."""
    formats.ensure_plugins()
    if (kind := vector.kind(data)) is not None:
        return _decode_vector(data, kind, limits, page, density)
    opened = open_image(data, limits, animated, page)
    image, fmt, total, orientation, icc = (
        opened.image,
        opened.fmt,
        opened.total,
        opened.orientation,
        opened.icc,
    )
    width, height = image.size
    source = opened.source
    with corrupt_as_fleet_error():
        scale, shrink = 1.0, 1
        frames: list[Frame]
        durations: list[int]
        if scale_for is not None and fmt == "jpeg" and not animated:
            upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            scale = scale_for(*upright)
            shrink = dct_shrink(width, height, scale)
        if (
            fmt == "jpeg"
            and total == 1
            and image.mode == "RGB"  # (MPO: several pictures)
            and not _foreign_profile("RGB", icc)
        ):
            cut = _cut(data, image, window, orientation) if shrink == 1 else None
            if cut is not None and window is not None:
                frames, source["window"] = [_frame_of(cut)], list(window)
            else:
                frames = [_jpeg_pixels(data, width, height, shrink)]
            durations = [0]
        elif fmt == "png" and png_bit_depth(data) == 16 and image.mode not in ("I;16", "I"):
            frames, durations = [_decode_16bit_png(data)], []
        else:
            if shrink > 1:  # Pillow's draft rule picks the same 1/shrink size
                image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            frames, durations = [], []
            for index in range(total) if animated else [page]:
                image.seek(index)
                frames.append(_frame_of(_to_srgb(image, icc)))
                durations.append(int(image.info.get("duration", 0) or 0))
        if timeline and total > 1 and not animated:
            durations = _timeline(image, total)
    frames = [_orient(frame, orientation) for frame in frames]
    if shrink > 1:  # shrunk on load: the frame's last row and column are part pixels
        w, h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        source["extent"] = [w / shrink, h / shrink, frames[0].shape[1], frames[0].shape[0]]
    source["durations"] = durations if total > 1 else []
    return Picture(
        frames=frames,
        format=fmt,
        source=source,
        max_pixels=int(limits.max_megapixels * 1e6),
        durations=durations if animated and total > 1 else [],
        loop=image.info.get("loop") if animated and total > 1 else None,
    )
