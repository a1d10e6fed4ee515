"""Shared by the header tests: a strict ranged reader, Pillow's reading of a header, and
small generated images."""

from __future__ import annotations

import functools
import io
import random
import struct
from collections.abc import Callable

import pytest
from PIL import Image

from billing.header import Header


class Counting:
    """A ranged reader over bytes that records what it was asked for. Strict like S3: a
    request must be non-empty and start inside the object (length 0 means "to the end"
    there, and a range past the end is an error), so read_header must respect a known size.
    """

    def __init__(self, data: bytes, strict: bool = True) -> None:
        self.data, self.strict, self.bytes, self.calls = data, strict, 0, 0

    def __call__(self, off: int, n: int) -> bytes:
        if self.strict:
            assert n > 0 and 0 <= off < len(self.data) and off + n <= len(self.data), (off, n)
        chunk = self.data[off : off + n]
        self.bytes += len(chunk)
        self.calls += 1
        return chunk


def pillow_reference(data: bytes) -> Header:
    """What Pillow says (header parsing only: Image.open does not decode)."""
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # giant-image.jpg is 280 MP
    try:
        with Image.open(io.BytesIO(data)) as im:
            assert im.format is not None  # Image.open names the format it recognised
            fmt = {"JPEG": "jpeg", "MPO": "jpeg"}.get(im.format, im.format.lower())
            frames = getattr(im, "n_frames", 1)  # counts without decoding (or growing a GIF)
            first = im.size
            pages = []
            for index in range(frames):  # each page's size as Pillow presents it
                im.seek(index)
                pages.append(im.size)
            width, height = max(first, *pages, key=lambda s: s[0] * s[1]) if fmt == "gif" else first
            differ = any(page != pages[-1 if fmt == "gif" else 0] for page in pages)
            return Header(fmt, width, height, frames, tuple(pages) if differ else ())
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def gradient(mode: str, size: tuple[int, int], shade: int = 0) -> Image.Image:
    im = Image.linear_gradient("L").resize(size).point(lambda v: (v + shade) % 256)
    return im.convert(mode)


def save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---- generated samples: one of each layout the reader handles, checked against Pillow


def frames(n: int, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> list[Image.Image]:
    return [gradient(mode, size, shade=i * 50) for i in range(n)]  # distinct, so none merge


def save_all(fmt: str, n: int, **kw: object) -> bytes:
    first, *rest = frames(n)
    return save(first, fmt, save_all=True, append_images=rest, **kw)


def png_16bit_rgb() -> bytes:
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    ok, buf = cv2.imencode(".png", np.full((21, 37, 3), 40000, np.uint16))
    assert ok
    return buf.tobytes()


def with_alpha(im: Image.Image) -> Image.Image:
    im.putalpha(gradient("L", im.size).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return im  # real transparency, so encoders keep the alpha channel


def gif_screen_smaller_than_frame() -> bytes:
    data = bytearray(save(gradient("P", (40, 30)), "GIF"))
    data[6:10] = struct.pack("<HH", 1, 1)  # logical screen 1x1: Pillow grows it to the frame
    return bytes(data)


def bmp_top_down() -> bytes:
    data = bytearray(save(gradient("RGB", (33, 17)), "BMP"))
    (height,) = struct.unpack_from("<i", data, 22)
    struct.pack_into("<i", data, 22, -height)
    return bytes(data)


def bmp_core_header() -> bytes:
    """OS/2 BITMAPCOREHEADER (12 bytes): Pillow reads it but cannot write it."""
    width, height = 13, 7
    row = (width * 3 + 3) & ~3
    pixels = bytes(row * height)
    offset = 14 + 12
    return (
        b"BM"
        + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
        + struct.pack("<IHHHH", 12, width, height, 1, 24)
        + pixels
    )


def jpeg_sof9() -> bytes:
    """Arithmetic-coded frame header (SOF9): Pillow cannot write one, so patch SOF0."""
    data = save(gradient("RGB", (57, 43)), "JPEG")
    return data.replace(b"\xff\xc0", b"\xff\xc9", 1)


def jpeg_fill_bytes() -> bytes:
    data = save(gradient("RGB", (57, 43)), "JPEG")
    sof = data.index(b"\xff\xc0")
    return data[:sof] + b"\xff" * 7 + data[sof:]  # fill bytes before a marker are legal


def big_icc_jpeg() -> bytes:
    icc = bytes(random.Random(1).getrandbits(8) for _ in range(300_000))  # fake but opaque
    return save(gradient("RGB", (64, 48)), "JPEG", icc_profile=icc)


def apng_with_big_text_first() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 100_000)  # a big chunk before acTL, skipped by length
    return save_all("PNG", 3, pnginfo=info)


GENERATED: dict[str, Callable[[], bytes]] = {
    "png-rgb": lambda: save(gradient("RGB", (123, 45)), "PNG"),
    "png-rgba": lambda: save(with_alpha(gradient("RGB", (45, 123))), "PNG"),
    "png-16bit-grey": lambda: save(gradient("L", (31, 29)).convert("I;16"), "PNG"),
    "png-16bit-rgb-cv2": png_16bit_rgb,
    "apng-3": lambda: save_all("PNG", 3),
    "apng-big-text": apng_with_big_text_first,
    "jpeg-baseline": lambda: save(gradient("RGB", (101, 77)), "JPEG"),
    "jpeg-progressive": lambda: save(gradient("RGB", (77, 101)), "JPEG", progressive=True),
    "jpeg-cmyk": lambda: save(gradient("CMYK", (64, 50)), "JPEG"),
    "jpeg-grey": lambda: save(gradient("L", (3, 5)), "JPEG"),
    "jpeg-exif": lambda: save(gradient("RGB", (64, 50)), "JPEG", exif=b"Exif\0\0" + b"MM" * 5000),
    "jpeg-big-icc": big_icc_jpeg,
    "jpeg-sof9": jpeg_sof9,
    "jpeg-fill-bytes": jpeg_fill_bytes,
    "gif-still": lambda: save(gradient("P", (40, 30)), "GIF"),
    "gif-animated-5": lambda: save_all("GIF", 5),
    "gif-screen-1x1": gif_screen_smaller_than_frame,
    "webp-lossy": lambda: save(gradient("RGB", (99, 61)), "WEBP", quality=80),
    "webp-lossless": lambda: save(gradient("RGB", (61, 99)), "WEBP", lossless=True),
    "webp-alpha-vp8x": lambda: save(with_alpha(gradient("RGB", (50, 40))), "WEBP", quality=80),
    "webp-animated-4": lambda: save_all("WEBP", 4),
    "avif": lambda: save(gradient("RGB", (96, 54)), "AVIF"),
    "avif-alpha": lambda: save(with_alpha(gradient("RGB", (54, 96))), "AVIF"),
    "avif-sequence-4": lambda: save_all("AVIF", 4),
    "tiff": lambda: save(gradient("RGB", (70, 35)), "TIFF"),
    "tiff-big-endian": lambda: save(gradient("L", (35, 70)).convert("I;16B"), "TIFF"),
    "tiff-3-pages": lambda: save_all("TIFF", 3),
    "bmp": lambda: save(gradient("RGB", (33, 17)), "BMP"),
    "bmp-top-down": bmp_top_down,
    "bmp-core-header": bmp_core_header,
}


@functools.cache  # seconds of encoding (AVIF), shared by the header test modules
def generated_samples() -> dict[str, bytes]:
    """GENERATED, built; a layout this Pillow cannot write is left out. Read-only."""
    out = {}
    for name, make in GENERATED.items():
        try:
            out[name] = make()
        except pytest.skip.Exception:
            continue
    return out
