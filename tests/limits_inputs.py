"""Inputs of issue 25's "smaller" attacks, written byte by byte (no encoder makes them):
GIFs of many tiny frames (a page far into one is a long seek) or of millions of one-byte
sub-blocks (a long header walk), and a large flat PNG (a flat-priced read of 100 MP); and
a large JPEG photo-like enough to cost a real decode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# LZW data of one pixel of colour 0 at code size 2: clear (4), 0, end (5) in 3-bit codes.
_ONE_PIXEL = b"\x02\x02\x44\x01\x00"  # minimum code size, one 2-byte sub-block, terminator
_PALETTE = b"\x00\x00\x00\xff\xff\xff"  # two colours: black, white


def _screen(width: int, height: int) -> bytes:
    """GIF89a header and logical screen with a 2-colour global table."""
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + _PALETTE


def _frame(delay: int = 1) -> bytes:
    """A graphic control block and a 1x1 frame at the origin (23 bytes)."""
    control = b"\x21\xf9\x04\x00" + struct.pack("<H", delay) + b"\x00\x00"
    return control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + _ONE_PIXEL


def many_frames_gif(frames: int, width: int = 1, height: int = 1) -> bytes:
    """`frames` 1x1 frames on a `width` x `height` canvas (300,000 frames: 6.9 MB)."""
    return _screen(width, height) + _frame() * frames + b"\x3b"


def sub_block_gif(sub_blocks: int) -> bytes:
    """A 1x1 one-frame GIF after a comment of `sub_blocks` one-byte sub-blocks (26M: 52 MB):
    every reader walks the chain a sub-block at a time to find the frame."""
    comment = b"\x21\xfe" + b"\x01x" * sub_blocks + b"\x00"
    return _screen(1, 1) + comment + _frame() + b"\x3b"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def flat_png(width: int, height: int, grey: int = 128) -> bytes:
    """An 8-bit greyscale PNG of one flat colour (100 MP: ~100 KB), compressed row by row
    so the builder never holds the whole image."""
    row = b"\x00" + bytes([grey]) * width  # filter type 0, then the row
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def blocky_jpeg(side: int) -> bytes:
    """A side x side JPEG of 8x8-pixel noise blocks (100 MP: ~26 MB), built from a small
    noise image enlarged, so the builder holds one full-size copy at most."""
    noise = np.random.default_rng(25).integers(0, 256, (side // 8, side // 8, 3), np.uint8)
    image = Image.fromarray(noise).resize((side, side), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
