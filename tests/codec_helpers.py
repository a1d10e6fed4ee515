"""Shared helpers of the codec tests: image builders and hand-made ICC profiles."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from tests.images import CORPUS, ORIENTATION
from worker.codec import Limits, decode

LIMITS = Limits()
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")


# --- helpers ----------------------------------------------------------------------------------


def save(
    pixels: np.ndarray | Image.Image, fmt: str, mode: str | None = None, **options: Any
) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def with_orientation(pixels: np.ndarray, fmt: str, orientation: int, **options: Any) -> bytes:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    return save(image, fmt, exif=exif, **options)


def plain_rgb(data: bytes) -> np.ndarray:
    """Pillow's decode with no EXIF or ICC handling: the stored pixels."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def asymmetric(h: int = 30, w: int = 40) -> np.ndarray:
    """Gradients on two channels plus a blue block in the stored top-left corner: every one of
    the 8 orientations gives a different picture."""
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack(
        [xs * 255 // (w - 1), ys * 255 // (h - 1), (xs * 7 + ys * 3) % 64], axis=-1
    ).astype(np.uint8)
    pixels[:6, :8] = (0, 0, 255)
    return pixels


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth RGB gradient: lossy codecs should reproduce it closely."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack(
        [xs * 255 // (w - 1), ys * 255 // (h - 1), (xs + ys) * 255 // (w + h - 2)], axis=-1
    ).astype(np.uint8)


def viewer(stored: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer displays, straight from the TIFF 6.0 Orientation definitions
    ("the 0th row represents the visual X, the 0th column the visual Y"), by index maps.

    With displayed size Hd x Wd, D[i, j] = S[row(i, j), col(i, j)]:
      1 row0=top,    col0=left   -> S[i, j]
      2 row0=top,    col0=right  -> S[i, Wd-1-j]
      3 row0=bottom, col0=right  -> S[Hd-1-i, Wd-1-j]
      4 row0=bottom, col0=left   -> S[Hd-1-i, j]
      5 row0=left,   col0=top    -> S[j, i]
      6 row0=right,  col0=top    -> S[Wd-1-j, i]
      7 row0=right,  col0=bottom -> S[Wd-1-j, Hd-1-i]
      8 row0=left,   col0=bottom -> S[j, Hd-1-i]
    """
    hs, ws = stored.shape[:2]
    hd, wd = (ws, hs) if orientation >= 5 else (hs, ws)
    i, j = np.indices((hd, wd))
    index = {
        1: (i, j),
        2: (i, wd - 1 - j),
        3: (hd - 1 - i, wd - 1 - j),
        4: (hd - 1 - i, j),
        5: (j, i),
        6: (wd - 1 - j, i),
        7: (wd - 1 - j, hd - 1 - i),
        8: (j, hd - 1 - i),
    }[orientation]
    return stored[index]


# Where the block stored in the top-left corner appears on screen.
BLOCK_CORNER = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


def corner(frame: np.ndarray, name: str) -> np.ndarray:
    h, w = frame.shape[:2]
    y = 1 if name[0] == "t" else h - 2
    x = 1 if name[1] == "l" else w - 2
    return frame[y, x, :3]


def fails_with(code: ErrorCode, data: bytes, limits: Limits = LIMITS, **kwargs: object) -> str:
    with pytest.raises(FleetError) as info:
        decode(data, limits, **kwargs)  # type: ignore[arg-type]
    assert info.value.code is code, info.value.message
    assert info.value.status == 422
    return info.value.message


# --- hand-built ICC profiles (known answers) --------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)
# sRGB primaries adapted to D50 (the ICC PCS): columns are the red, green, blue colorants.
SRGB_D50 = np.array(
    [
        [0.4360747, 0.3850649, 0.1430804],
        [0.2225045, 0.7168786, 0.0606169],
        [0.0139322, 0.0971045, 0.7141733],
    ]
)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + b"\0" * 8
        + b"\0" * 3
        + b"\0" * 67
    )


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A minimal ICC v2.1 profile."""
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", start + len(body))
        + b"\0" * 4
        + bytes([2, 0x10, 0, 0])
        + device_class
        + space
        + pcs
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15(D50[0])
        + _s15(D50[1])
        + _s15(D50[2])
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def swapped_rg_profile() -> bytes:
    """An RGB matrix/TRC profile whose red colorant is sRGB's green and vice versa: pure red
    in it is pure green in sRGB. A colour-managed decoder must swap them."""
    red, green, blue = SRGB_D50.T
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256))
    return _icc(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        [
            (b"desc", _desc("Swapped red-green test")),
            (b"wtpt", _xyz(*D50)),
            (b"rXYZ", _xyz(*green)),
            (b"gXYZ", _xyz(*red)),
            (b"bXYZ", _xyz(*blue)),
            (b"rTRC", gamma),
            (b"gTRC", gamma),
            (b"bTRC", gamma),
        ],
    )


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    c = np.asarray(rgb, float) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_D50 @ linear / np.array(D50)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


# A press-like CMYK profile: what each ink corner looks like in sRGB. Paper is white and K is
# black (so no rendering intent moves them); the inks are duller than the naive formula's.
PRESS = {  # (c, m, y) with k = 0
    (0, 0, 0): (255, 255, 255),
    (1, 0, 0): (0, 160, 220),
    (0, 1, 0): (230, 0, 140),
    (0, 0, 1): (255, 235, 0),
    (0, 1, 1): (220, 30, 40),
    (1, 0, 1): (0, 150, 70),
    (1, 1, 0): (40, 50, 150),
    (1, 1, 1): (20, 20, 20),
}


def press_cmyk_profile() -> bytes:
    """A CMYK -> Lab profile: one lut16 (mft2) A2B0 with a 2-point grid at the ink corners."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lightness, a, b = srgb_to_lab((0, 0, 0) if k else PRESS[(c, m, y)])
                    clut += struct.pack(
                        ">HHH",
                        round(lightness * 652.8),
                        round((a + 128) * 256),
                        round((b + 128) * 256),
                    )
    identity = b"".join(_s15(float(i == j)) for i in range(3) for j in range(3))
    lut = (
        b"mft2\0\0\0\0"
        + bytes([4, 3, 2, 0])
        + identity
        + struct.pack(">HH", 2, 2)
        + struct.pack(">HH", 0, 65535) * 4
        + clut
        + struct.pack(">HH", 0, 65535) * 3
    )
    return _icc(
        b"prtr",
        b"CMYK",
        b"Lab ",
        [(b"desc", _desc("Test press CMYK")), (b"wtpt", _xyz(*D50)), (b"A2B0", lut)],
    )
