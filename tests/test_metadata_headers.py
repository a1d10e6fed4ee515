"""A metadata job reads its input's header only (worker.header_facts.facts_picture): for
every input format it reports exactly what a full decode reports, and no pixel is decoded.

"No pixel decoded" is observed by counting calls of every Pillow `load` (the base class's
and each format plugin's own) and of the codec's own decoders (libjpeg-turbo, OpenCV)."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from tests.codec_helpers import save, swapped_rg_profile, with_orientation
from tests.images import CORPUS
from worker import codec, formats
from worker.header_facts import Limits, facts_picture
from worker.ops.metadata import describe

LIMITS = Limits()
# pillow-jxl-plugin (1.3.8) decodes the whole image inside `Image.open`, in its Rust decoder
# (not a `load`): JPEG XL's facts are checked equal, but its pixels are decoded.
DECODES_ON_OPEN = ("jxl",)


def _classes(base: type) -> Iterator[type]:
    subclasses: list[type] = base.__subclasses__()
    for sub in subclasses:
        yield sub
        yield from _classes(sub)


@pytest.fixture
def pixel_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the pixel decoders called while the test runs."""
    formats.ensure_plugins()
    calls: list[str] = []

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(real)
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for cls in [Image.Image, *_classes(Image.Image)]:
        if "load" in vars(cls):
            monkeypatch.setattr(cls, "load", counted(cls.__name__, vars(cls)["load"]))
    monkeypatch.setattr(
        codec.simplejpeg, "decode_jpeg", counted("simplejpeg", codec.simplejpeg.decode_jpeg)
    )
    monkeypatch.setattr(codec.cv2, "imdecode", counted("imdecode", codec.cv2.imdecode))
    return calls


def gradient(width: int = 40, height: int = 30, alpha: bool = False) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    planes = [xs * 255 // (width - 1), ys * 255 // (height - 1), np.full_like(xs, 90)]
    if alpha:
        planes.append(np.full_like(xs, 128))
    return np.stack(planes, axis=-1).astype(np.uint8)


def _frames(mode: str, count: int, durations: list[int]) -> tuple[Image.Image, dict[str, Any]]:
    images = [
        Image.fromarray(np.roll(gradient(), 5 * i, axis=1)).convert(mode) for i in range(count)
    ]
    return images[0], {
        "save_all": True,
        "append_images": images[1:],
        "duration": durations,
        "loop": 2,
    }


def _png_exif_after_pixels() -> bytes:
    """An eXIf chunk after the image data, where Pillow's reader finds it only by decoding."""
    data = with_orientation(gradient(), "PNG", 6)
    at, chunks = 8, []
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append(data[at : at + 12 + length])
        at += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] not in (b"eXIf", b"IEND")]
    assert exif, "Pillow wrote no eXIf chunk"
    return data[:8] + b"".join(rest + exif + [chunks[-1]])


def _heif(image: Image.Image) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out)
    return out.getvalue()


def _inputs() -> dict[str, bytes]:
    import pillow_jxl  # noqa: F401  (the encoder: registers JXL with Pillow)

    formats.ensure_plugins()  # AVIF's writer
    rgb, rgba = gradient(), gradient(alpha=True)
    grey16 = (np.mgrid[0:30, 0:40][1] * 1500).astype(np.uint16)
    return {
        "jpeg": save(rgb, "JPEG"),
        "jpeg orientation 6": with_orientation(rgb, "JPEG", 6),
        "jpeg grey": save(rgb[:, :, 0], "JPEG"),
        "jpeg cmyk": save(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "jpeg foreign icc": save(rgb, "JPEG", icc_profile=swapped_rg_profile()),
        "png rgba": save(rgba, "PNG"),
        "png palette with transparency": save(
            Image.fromarray(rgb).convert("P"), "PNG", transparency=3
        ),
        "png grey alpha": save(Image.fromarray(rgba).convert("LA"), "PNG"),
        "png 16-bit grey": save(Image.fromarray(grey16), "PNG"),
        "png 1-bit": save(Image.fromarray(rgb).convert("1"), "PNG"),
        "png exif after the pixels": _png_exif_after_pixels(),
        "webp": save(rgb, "WEBP"),
        "webp alpha": save(rgba, "WEBP", lossless=True),
        "webp animated": save(
            *_frames("RGBA", 3, [40, 70, 110])[:1], "WEBP", **_frames("RGBA", 3, [40, 70, 110])[1]
        ),
        "png animated": save(
            *_frames("RGBA", 3, [40, 70, 110])[:1], "PNG", **_frames("RGBA", 3, [40, 70, 110])[1]
        ),
        "mpo": save(
            *_frames("RGB", 2, [0, 0])[:1],
            "MPO",
            save_all=True,
            append_images=_frames("RGB", 2, [0, 0])[1]["append_images"],
        ),
        "gif": save(Image.fromarray(rgb).convert("P"), "GIF"),
        "gif animated": save(
            *_frames("P", 4, [30, 60, 90, 120])[:1], "GIF", **_frames("P", 4, [30, 60, 90, 120])[1]
        ),
        "tiff": save(rgb, "TIFF"),
        "tiff cmyk": save(Image.fromarray(rgb).convert("CMYK"), "TIFF"),
        "tiff 3 pages": save(
            *_frames("RGB", 3, [0, 0, 0])[:1],
            "TIFF",
            save_all=True,
            append_images=_frames("RGB", 3, [0, 0, 0])[1]["append_images"],
        ),
        "tiff orientation 8": with_orientation(rgb, "TIFF", 8),
        "avif": save(rgba, "AVIF"),
        "heif": _heif(Image.fromarray(rgb)),
        "jxl": save(rgb, "JXL"),
        "jp2": save(rgb, "JPEG2000"),
        "bmp": save(rgb, "BMP"),
    }


INPUTS = _inputs()
CORPUS_FILES = sorted(
    p.name
    for p in CORPUS.glob("*")
    if CORPUS.is_dir()
    and p.suffix.lower() not in (".md", ".svg", ".pdf")
    and p.name not in ("truncated.jpg", "giant-image.jpg")
)


def _full(data: bytes) -> dict[str, Any]:
    """What the runner reported before: a full decode of page 0 with every frame's timing."""
    return describe(codec.decode(data, LIMITS, timeline=True))


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_headers_give_the_full_decode_facts(name: str, pixel_decodes: list[str]) -> None:
    data = INPUTS[name]
    picture = facts_picture(data, LIMITS)
    assert picture is not None, f"{name}: fell back to a full decode"
    assert pixel_decodes == [] or name.startswith(DECODES_ON_OPEN), pixel_decodes
    facts = describe(picture)
    pixel_decodes.clear()
    assert facts == _full(data)
    assert pixel_decodes, "the counter did not see the full decode"  # the observable works


def test_a_frame_count_the_blocks_do_not_match_decodes() -> None:
    """An APNG whose acTL counts more frames than its fcTL chunks: the durations the
    header gives would be short, so the facts come from a full decode."""
    image, options = _frames("RGB", 3, [40, 70, 110])
    data = save(image, "PNG", **options)
    at = data.index(b"acTL")  # type, then num_frames and num_plays, then the CRC
    body = b"acTL" + (4).to_bytes(4, "big") + data[at + 8 : at + 12]
    lying = data[:at] + body + zlib.crc32(body).to_bytes(4, "big") + data[at + 16 :]
    assert getattr(Image.open(io.BytesIO(lying)), "n_frames", 1) == 4
    assert facts_picture(lying, LIMITS) is None


@pytest.mark.skipif(not CORPUS_FILES, reason="shared corpus not present")
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_headers_give_the_full_decode_facts(name: str, pixel_decodes: list[str]) -> None:
    data = (CORPUS / name).read_bytes()
    picture = facts_picture(data, LIMITS)
    assert picture is not None, f"{name}: fell back to a full decode"
    assert pixel_decodes == [] or name.endswith(DECODES_ON_OPEN), pixel_decodes
    assert describe(picture) == _full(data)


def test_a_large_image_costs_no_pixel_memory(pixel_decodes: list[str]) -> None:
    """A 10000x8000 JPEG's facts (80 MP: 240 MB decoded) come from a frame of no memory."""
    data = save(Image.new("RGB", (10000, 8000), (20, 90, 200)), "JPEG", quality=50)
    pixel_decodes.clear()  # (the writing above)
    picture = facts_picture(data, LIMITS)
    assert picture is not None and pixel_decodes == []
    assert (picture.width, picture.height) == (10000, 8000)
    assert picture.first.strides[:2] == (0, 0) and picture.first.base is not None
    assert picture.first.base.nbytes <= 4
