"""The re-encode operations (convert, compress, exif-strip) and the fact operations (metadata,
dominant-color): inputs are generated here, decoded with worker.codec, handed to the handler.
"""

from __future__ import annotations

import io
import json
from dataclasses import fields as dataclass_fields
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.analysis import DominantColorJob, MetadataJob
from jobs.formats import CompressJob, ConvertJob, ExifStripJob
from jobs.registry import OPERATIONS
from tests.codec_helpers import press_cmyk_profile, swapped_rg_profile
from tests.images import ORIENTATION
from worker import codec
from worker.ops import OpOutput
from worker.ops.compress import compress
from worker.ops.convert import convert
from worker.ops.dominant_color import dominant_color
from worker.ops.exif_strip import exif_strip
from worker.ops.metadata import metadata
from worker.picture import Picture

CFG = load_settings()  # the handlers' third argument

LIMITS = codec.Limits()


def save(image: Image.Image | np.ndarray, fmt: str, **options: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def scene(h: int = 30, w: int = 40) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack(
        [xs * 255 // (w - 1), ys * 255 // (h - 1), np.full_like(xs, 90)], axis=-1
    ).astype(np.uint8)
    pixels[:6, :8] = (0, 0, 255)  # a marker in the stored top-left corner
    return pixels


def oriented_jpeg(orientation: int, h: int = 30, w: int = 40) -> bytes:
    image = Image.fromarray(scene(h, w))
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "Test camera"
    return save(image, "JPEG", quality=95, exif=exif)


def gif(durations: list[int], loop: int = 0) -> bytes:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)][: len(durations)]
    frames = [Image.new("RGB", (16, 12), colour) for colour in colours]
    return save(
        frames[0], "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop
    )


def png16(pixels: np.ndarray) -> bytes:
    frame = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", frame)
    assert ok
    return buffer.tobytes()


def meta(data: bytes, **decode_options: Any) -> dict[str, Any]:
    """Decode as the runner does for a metadata job (every frame's timing), then run it."""
    decode_options.setdefault("timeline", MetadataJob.reads_timeline)
    output = metadata([codec.decode(data, LIMITS, **decode_options)], MetadataJob(input="in"), CFG)
    assert output.picture is None
    assert set(output.fields) == {"metadata"}
    json.dumps(output.fields)  # plain JSON types only (no numpy scalars, no bytes)
    return output.fields["metadata"]


# --- handler wiring ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("convert", convert),
        ("compress", compress),
        ("exif-strip", exif_strip),
        ("metadata", metadata),
        ("dominant-color", dominant_color),
    ],
)
def test_registry_loads_these_handlers(name: str, function: object) -> None:
    assert OPERATIONS[name].load_handler() is function


# --- convert, compress, exif-strip ------------------------------------------------------------


def test_convert_sets_format_and_quality() -> None:
    picture = codec.decode(save(scene(), "PNG"), LIMITS)
    output = convert([picture], ConvertJob(input="in", format="webp", quality=61), CFG)
    assert isinstance(output, OpOutput)
    assert output.picture is not None and output.picture.format == "webp"
    assert output.quality == 61
    assert picture.format == "png"  # the input is not mutated
    np.testing.assert_array_equal(output.picture.first, scene())
    for f in dataclass_fields(Picture):  # everything else is carried over
        if f.name != "format":
            assert getattr(output.picture, f.name) is getattr(picture, f.name)


def test_convert_keeps_animation() -> None:
    picture = codec.decode(gif([100, 200, 300]), LIMITS, animated=True)
    output = convert([picture], ConvertJob(input="in", format="webp", animated=True), CFG)
    assert output.picture is not None
    assert len(output.picture.frames) == 3 and output.picture.durations == [100, 200, 300]
    assert output.quality == 85  # the spec's default
    again = codec.decode(
        codec.encode(output.picture, output.picture.format, 90, None), LIMITS, animated=True
    )
    assert len(again.frames) == 3 and again.durations == [100, 200, 300]


def test_compress_keeps_picture_sets_quality() -> None:
    picture = codec.decode(save(scene(), "JPEG", quality=95), LIMITS)
    output = compress([picture], CompressJob(input="in", quality=20), CFG)
    assert output.picture is picture and output.quality == 20 and output.fields == {}
    assert output.picture.format == "jpeg"  # re-encoded in its own format
    low = codec.encode(output.picture, output.picture.format, output.quality, None)
    high = codec.encode(picture, "jpeg", 95, None)
    assert len(low) < len(high)


def test_exif_strip_returns_upright_picture() -> None:
    picture = codec.decode(oriented_jpeg(6), LIMITS)
    output = exif_strip([picture], ExifStripJob(input="in"), CFG)
    assert output.picture is picture
    assert output.fields == {"stripped": True}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_exif_strip_end_to_end(fmt: str) -> None:
    """Orientation 6 + maker tag + an ICC profile in; out: no EXIF, no ICC, pixels upright."""
    stored = scene(60, 80)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Test camera"
    exif[0x0131] = "Some software"
    source = save(image, "JPEG", quality=95, exif=exif, icc_profile=swapped_rg_profile())
    assert len(Image.open(io.BytesIO(source)).getexif()) > 0  # the input really has them
    assert Image.open(io.BytesIO(source)).info.get("icc_profile")

    output = exif_strip([codec.decode(source, LIMITS)], ExifStripJob(input="in"), CFG)
    assert output.picture is not None
    data = codec.encode(output.picture, fmt, 95, None)
    result = Image.open(io.BytesIO(data))
    assert len(result.getexif()) == 0
    assert not result.info.get("icc_profile") and "exif" not in result.info
    assert "xmp" not in result.info
    # Upright: stored 80x60 turned 90 degrees clockwise is 60 wide, 80 high, and the marker
    # stored top-left is now top-right.
    assert result.size == (60, 80)
    shown = np.asarray(result.convert("RGB")).astype(int)
    assert shown[2, 57, 2] > 200 and shown[2, 57, 0] < 60
    assert shown[2, 2, 2] < 150  # not in the top-left any more


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_rgba_png() -> None:
    rgba = np.dstack([scene(), np.full((30, 40), 128, np.uint8)])
    assert meta(save(rgba, "PNG")) == {
        "format": "png",
        "width": 40,
        "height": 30,
        "stored_width": 40,
        "stored_height": 30,
        "mode": "RGBA",
        "space": "srgb",
        "channels": 4,
        "has_alpha": True,
        "bit_depth": 8,
        "orientation": 1,
        "has_exif": False,
        "icc": None,
        "frames": 1,
        "loop": None,
        "durations": [],
    }


@pytest.mark.parametrize("with_profile", [False, True])
def test_metadata_cmyk_jpeg(with_profile: bool) -> None:
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))
    options = {"icc_profile": press_cmyk_profile()} if with_profile else {}
    facts = meta(save(cmyk, "JPEG", **options))
    assert facts["format"] == "jpeg" and facts["mode"] == "CMYK" and facts["space"] == "cmyk"
    assert facts["channels"] == 4 and facts["has_alpha"] is False and facts["bit_depth"] == 8
    assert (facts["width"], facts["height"]) == (20, 10)
    assert facts["icc"] == ("Test press CMYK" if with_profile else None)


def test_metadata_16_bit_png() -> None:
    ys, xs = np.mgrid[0:12, 0:20]
    deep = np.stack([xs * 3000, ys * 5000, xs * ys * 200], axis=-1).astype(np.uint16)
    facts = meta(png16(deep))
    assert facts["bit_depth"] == 16 and facts["format"] == "png"
    assert facts["channels"] == 3 and facts["has_alpha"] is False and facts["space"] == "srgb"
    assert (facts["width"], facts["height"]) == (20, 12)
    grey = meta(png16(deep[:, :, 0]))
    assert grey["bit_depth"] == 16 and grey["space"] == "grey" and grey["channels"] == 1


def test_metadata_orientation_6_jpeg() -> None:
    """Stored 40x30 with orientation 6: displayed 30 wide, 40 high."""
    facts = meta(oriented_jpeg(6))
    assert (facts["width"], facts["height"]) == (30, 40)
    assert (facts["stored_width"], facts["stored_height"]) == (40, 30)
    assert facts["orientation"] == 6 and facts["has_exif"] is True
    assert facts["format"] == "jpeg" and facts["mode"] == "RGB" and facts["channels"] == 3


@pytest.mark.parametrize(
    ("orientation", "shown"), [(1, (40, 30)), (3, (40, 30)), (5, (30, 40)), (8, (30, 40))]
)
def test_metadata_dimensions_per_orientation(orientation: int, shown: tuple[int, int]) -> None:
    facts = meta(oriented_jpeg(orientation))
    assert (facts["width"], facts["height"]) == shown
    assert (facts["stored_width"], facts["stored_height"]) == (40, 30)


def test_metadata_animated_gif() -> None:
    facts = meta(gif([50, 120, 70]), animated=True)
    assert facts["format"] == "gif" and facts["mode"] == "P"
    assert facts["frames"] == 3 and facts["loop"] == 0 and facts["durations"] == [50, 120, 70]
    assert (facts["width"], facts["height"]) == (16, 12)


def test_metadata_gif_frame_count_without_animated() -> None:
    """A metadata job reads the first page only (the default), yet the frame count and loop
    come from the header."""
    facts = meta(gif([50, 120, 70], loop=2))
    assert facts["frames"] == 3 and facts["loop"] == 2


def test_metadata_gif_durations_without_animated() -> None:
    """The durations of an animation are facts of the file, whether or not the job asked to
    decode every frame (`animated` is false by default for metadata jobs)."""
    facts = meta(gif([50, 120, 70]))
    assert facts["durations"] == [50, 120, 70]


def p_with_transparency() -> bytes:
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30])
    return save(image, "PNG", transparency=0)


def grey_alpha() -> bytes:
    return save(Image.new("LA", (6, 4), (100, 50)), "PNG")


@pytest.mark.parametrize(
    ("data", "mode", "space", "channels", "has_alpha", "depth"),
    [
        (save(Image.new("L", (6, 4), 90), "JPEG"), "L", "grey", 1, False, 8),
        (save(Image.new("1", (6, 4), 1), "PNG"), "1", "b-w", 1, False, 1),
        (grey_alpha(), "LA", "grey", 2, True, 8),
        (p_with_transparency(), "P", "srgb", 4, True, 8),
        (save(Image.new("P", (6, 4), 0), "GIF"), "P", "srgb", 3, False, 8),
        (
            save(Image.new("RGB", (6, 4), (1, 2, 3)), "WEBP", lossless=True),
            "RGB",
            "srgb",
            3,
            False,
            8,
        ),
    ],
    ids=["jpeg-L", "png-1bit", "png-LA", "png-P-transparent", "gif-P", "webp-RGB"],
)
def test_metadata_modes(
    data: bytes, mode: str, space: str, channels: int, has_alpha: bool, depth: int
) -> None:
    facts = meta(data)
    assert (
        facts["mode"],
        facts["space"],
        facts["channels"],
        facts["has_alpha"],
        facts["bit_depth"],
    ) == (mode, space, channels, has_alpha, depth)
    assert (facts["width"], facts["height"]) == (6, 4)
    assert facts["frames"] == 1 and facts["loop"] is None and facts["durations"] == []


def test_metadata_icc_description() -> None:
    facts = meta(save(scene(), "PNG", icc_profile=swapped_rg_profile()))
    assert facts["icc"] == "Swapped red-green test"


# --- dominant-color ---------------------------------------------------------------------------


def dominant_of(frame: np.ndarray) -> dict[str, Any]:
    output = dominant_color(
        [Picture(frames=[frame], format="png")], DominantColorJob(input="in"), CFG
    )
    assert output.picture is None
    json.dumps(output.fields)
    return output.fields


def assert_colour(fields: dict[str, Any], expected: tuple[int, int, int], tolerance: int = 2):
    got = (fields["dominant"]["r"], fields["dominant"]["g"], fields["dominant"]["b"])
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= tolerance, got
    assert fields["hex"] == "#{:02x}{:02x}{:02x}".format(*got)


def test_dominant_majority_colour() -> None:
    """60% one colour, 40% a rainbow gradient: the colour."""
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, :60] = (30, 120, 200)
    xs = np.arange(40)
    frame[:, 60:] = np.stack([xs * 6, 255 - xs * 6, (xs * 37) % 256], axis=-1)[None]
    assert_colour(dominant_of(frame), (30, 120, 200))


def test_dominant_is_not_the_mean() -> None:
    """45% red, 30% blue, 25% green: the mean is a muddy purple-brown; the dominant is red."""
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:45] = (255, 0, 0)
    frame[45:75] = (0, 0, 255)
    frame[75:] = (0, 255, 0)
    mean = frame.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - (255, 0, 0)).max() > 100  # the mean really is far from red
    fields = dominant_of(frame)
    assert_colour(fields, (255, 0, 0), tolerance=0)
    assert fields["hex"] == "#ff0000"


def test_dominant_noisy_colour_on_a_bin_edge() -> None:
    """JPEG-like noise of +-1 around a colour sitting exactly on 5-bit bin edges splits it over
    8 bins; it is still the dominant colour against a 45% flat grey."""
    rng = np.random.default_rng(5)
    frame = np.full((100, 100, 3), 50, np.uint8)
    noise = rng.integers(-1, 2, (100, 55, 3))
    frame[:, :55] = np.array([104, 152, 200]) + noise
    assert_colour(dominant_of(frame), (104, 152, 200), tolerance=1)


def test_dominant_ignores_transparent_pixels() -> None:
    """70% of the pixels are fully transparent (green or black underneath): they don't count."""
    frame = np.zeros((100, 100, 4), np.uint8)
    frame[:35] = (0, 255, 0, 0)
    frame[35:70] = (0, 0, 0, 0)
    frame[70:90] = (255, 128, 0, 255)
    frame[90:] = (20, 20, 200, 255)
    assert_colour(dominant_of(frame), (255, 128, 0))


def test_dominant_large_image_downsampled() -> None:
    """Over 256 px the frame is downsampled first; blocks of colour survive it, and transparent
    pixels do not bleed into the colour."""
    frame = np.zeros((900, 1200, 4), np.uint8)
    frame[..., 3] = 255
    frame[:, :660, :3] = (240, 200, 40)  # 55%
    rng = np.random.default_rng(6)
    frame[:, 660:, :3] = rng.integers(0, 256, (900, 540, 3))
    frame[::2, ::2] = (0, 0, 0, 0)  # a fine transparent mesh over everything
    assert_colour(dominant_of(frame), (240, 200, 40))


def test_dominant_16_bit() -> None:
    frame = np.zeros((20, 20, 3), np.uint16)
    frame[:, :12] = (200 * 257, 50 * 257, 100 * 257)
    frame[:, 12:] = (0, 65535, 0)
    assert_colour(dominant_of(frame), (200, 50, 100), tolerance=0)


def test_dominant_fully_transparent() -> None:
    assert dominant_of(np.zeros((5, 5, 4), np.uint8)) == {"dominant": None, "hex": None}


def test_dominant_uses_the_first_frame() -> None:
    picture = codec.decode(gif([100, 100]), LIMITS, animated=True)
    output = dominant_color([picture], DominantColorJob(input="in"), CFG)
    assert output.fields["hex"] == "#c80000"


def test_dominant_from_a_decoded_jpeg() -> None:
    """Through the codec: a JPEG that is 2/3 teal and 1/3 a gradient."""
    frame = np.zeros((90, 120, 3), np.uint8)
    frame[:60] = (0, 128, 128)
    frame[60:] = np.stack([np.arange(120) * 2, np.full(120, 60), np.arange(120)], axis=-1)[None]
    picture = codec.decode(save(frame, "JPEG", quality=90), LIMITS)
    output = dominant_color([picture], DominantColorJob(input="in"), CFG)
    got = output.fields["dominant"]
    assert max(abs(got["r"] - 0), abs(got["g"] - 128), abs(got["b"] - 128)) <= 3, got
