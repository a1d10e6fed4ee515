"""Test images made by the suite itself (the shared corpus is optional)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ORIENTATION = 0x0112
# The shared corpus lies beside the checkout (../shared), as it does for CI.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "images"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB scene with a few sharp shapes: realistic for JPEG, easy to compare."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [
            128 + 100 * np.sin(x / (width / 3.1) + 0.5),
            128 + 100 * np.cos(y / (height / 2.3)),
            128 + 90 * np.sin((x + y) / (width / 1.7)),
        ],
        axis=-1,
    )
    for _ in range(6):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(min(width, height) // 20, min(width, height) // 6)
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def encode(
    pixels: np.ndarray, fmt: str = "PNG", orientation: int | None = None, **options: object
) -> bytes:
    image = Image.fromarray(pixels)
    if orientation is not None:
        exif = image.getexif()
        exif[ORIENTATION] = orientation
        options["exif"] = exif
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Plain decode, no EXIF handling (the independent side of a comparison)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows for `stored` pixels with this EXIF orientation (TIFF spec table)."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.transpose(a, (1, 0, 2)),
        6: lambda a: np.rot90(a, k=-1),  # stored rotated left: turn 90 clockwise
        7: lambda a: np.transpose(a, (1, 0, 2))[::-1, ::-1],  # transverse
        8: lambda a: np.rot90(a, k=1),
    }
    return np.ascontiguousarray(transforms[orientation](stored))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def text_image(lines: list[str], size: int = 30) -> bytes:
    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (900, 40 + len(lines) * int(size * 1.6)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((20, 20 + index * int(size * 1.6)), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF written by hand from its objects (object 1 is the catalog), with a correct
    cross-reference table: pages, boxes and actions exactly as a test states them."""
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def running_record(spec: Any, tenant: str = "t") -> Any:
    """A job record of `spec`, running: what the worker's decode_inputs and handlers take
    (tests and the decode bench call them as the runner does)."""
    from jobs.records import JobRecord, JobStatus, new_job_id, now

    created = now()
    return JobRecord(
        id=new_job_id(),
        tenant=tenant,
        operation=spec.__struct_config__.tag,
        status=JobStatus.RUNNING,
        spec=spec,
        created_at=created,
        updated_at=created,
    )
