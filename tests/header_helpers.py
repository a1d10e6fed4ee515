"""Shared by the header tests: a strict ranged reader, Pillow's reading of a header, and
small generated images."""

from __future__ import annotations

import io

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
