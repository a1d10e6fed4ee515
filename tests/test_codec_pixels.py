"""Codec: EXIF orientation, CMYK and ICC to sRGB, 16-bit depth and alpha, decoded and
encoded against independent expectations."""

from __future__ import annotations

import io
import struct
import zlib
from functools import partial

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from tests.codec_helpers import (
    BLOCK_CORNER,
    LIMITS,
    PRESS,
    asymmetric,
    corner,
    diff,
    gradient,
    needs_corpus,
    plain_rgb,
    press_cmyk_profile,
    save,
    swapped_rg_profile,
    viewer,
    with_orientation,
)
from tests.images import CORPUS, ORIENTATION
from tests.pictures import pic
from worker.codec import Limits, decode, encode

# --- EXIF orientation -------------------------------------------------------------------------


def test_viewer_table_agrees_with_pillow() -> None:
    """The test's own TIFF table matches Pillow's ImageOps.exif_transpose (a second,
    independent reference) for all 8 orientations."""
    stored = asymmetric()
    for orientation in range(1, 9):
        data = with_orientation(stored, "PNG", orientation)
        shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        np.testing.assert_array_equal(viewer(stored, orientation), shown, str(orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_orientation_matrix(orientation: int) -> None:
    """A PNG with EXIF orientation 1..8 decodes to exactly what a viewer shows."""
    stored = asymmetric()
    picture = decode(with_orientation(stored, "PNG", orientation), LIMITS)
    frame = picture.first
    expected_shape = (40, 30, 3) if orientation >= 5 else (30, 40, 3)
    assert frame.shape == expected_shape
    np.testing.assert_array_equal(frame, viewer(stored, orientation))
    np.testing.assert_array_equal(corner(frame, BLOCK_CORNER[orientation]), (0, 0, 255))
    assert picture.source["orientation"] == orientation
    assert (picture.source["width"], picture.source["height"]) == (40, 30)  # as stored


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_jpeg_orientation(orientation: int) -> None:
    """JPEG too: the decoded frame is the stored pixels rearranged as a viewer shows them."""
    stored = asymmetric(60, 80)
    data = with_orientation(stored, "JPEG", orientation, quality=95)
    frame = decode(data, LIMITS).first
    np.testing.assert_array_equal(frame, viewer(plain_rgb(data), orientation))
    assert diff(frame, viewer(stored, orientation)) < 6
    assert np.abs(corner(frame, BLOCK_CORNER[orientation]).astype(int) - (0, 0, 255)).max() < 30


def test_orientation_applies_to_alpha_and_16_bit() -> None:
    """Orientation is applied to RGBA frames and to the 16-bit PNG path as well."""
    rgba = np.dstack([asymmetric(), np.arange(40 * 30, dtype=np.uint8).reshape(30, 40)])
    frame = decode(with_orientation(rgba, "PNG", 6), LIMITS).first
    np.testing.assert_array_equal(frame, viewer(rgba, 6))

    deep = asymmetric().astype(np.uint16) * 257 + 3
    ok, buffer = cv2.imencode(".png", deep[:, :, ::-1])
    assert ok
    png = buffer.tobytes()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[ORIENTATION] = 8
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\0\0") else payload
    chunk = (
        struct.pack(">I", len(payload))
        + b"eXIf"
        + payload
        + struct.pack(">I", zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF)
    )
    end_of_ihdr = 8 + 25
    picture = decode(png[:end_of_ihdr] + chunk + png[end_of_ihdr:], LIMITS)
    assert picture.source["orientation"] == 8
    assert picture.first.dtype == np.uint16
    np.testing.assert_array_equal(picture.first, viewer(deep, 8))


# --- colour: CMYK and ICC ---------------------------------------------------------------------

INKS = {
    "red": (0, 255, 255, 0),
    "cyan": (255, 0, 0, 0),
    "paper": (0, 0, 0, 0),
    "black": (0, 0, 0, 255),
    "blue": (255, 255, 0, 0),
}


def cmyk_jpeg(icc: bytes | None = None) -> bytes:
    """A CMYK JPEG of 16x16 ink patches, one per INKS entry, left to right."""
    patches = np.concatenate([np.full((16, 16, 4), ink, np.uint8) for ink in INKS.values()], axis=1)
    options = {"icc_profile": icc} if icc else {}
    return save(patches, "JPEG", "CMYK", quality=100, **options)


def patch_colours(frame: np.ndarray) -> dict[str, np.ndarray]:
    return {name: frame[8, 16 * i + 8].astype(int) for i, name in enumerate(INKS)}


def test_cmyk_jpeg_without_profile_is_plausible() -> None:
    """No profile: the naive conversion, which still gives the colours inks mean."""
    picture = decode(cmyk_jpeg(), LIMITS)
    assert Image.open(io.BytesIO(cmyk_jpeg())).mode == "CMYK"
    assert picture.first.shape == (16, 80, 3) and picture.first.dtype == np.uint8
    assert picture.source["mode"] == "CMYK" and picture.source["icc"] is None
    seen = patch_colours(picture.first)
    red, cyan, paper, black, blue = (seen[k] for k in INKS)
    assert red[0] > 200 and red[1] < 50 and red[2] < 50
    assert cyan[0] < 50 and cyan[1] > 200 and cyan[2] > 200
    assert paper.min() > 240 and black.max() < 15
    assert blue[2] > 200 and blue[0] < 50 and blue[1] < 50


def test_cmyk_jpeg_with_profile_uses_it() -> None:
    """With a CMYK profile the inks come out as the profile says, not as the naive formula."""
    picture = decode(cmyk_jpeg(press_cmyk_profile()), LIMITS)
    assert picture.first.shape == (16, 80, 3)
    assert picture.source["icc"] == "Test press CMYK"
    seen = patch_colours(picture.first)
    expected = {
        "red": PRESS[(0, 1, 1)],
        "cyan": PRESS[(1, 0, 0)],
        "paper": (255, 255, 255),
        "black": (0, 0, 0),
        "blue": PRESS[(1, 1, 0)],
    }
    for name, colour in expected.items():
        assert np.abs(seen[name] - colour).max() <= 4, (name, seen[name], colour)
    naive = patch_colours(decode(cmyk_jpeg(), LIMITS).first)
    assert np.abs(seen["red"] - naive["red"]).max() > 20  # the profile made a difference


def test_non_srgb_rgb_profile_is_converted() -> None:
    """An RGB image tagged with a red/green-swapped profile: red and green trade places."""
    stored = np.zeros((4, 8, 3), np.uint8)
    stored[0], stored[1], stored[2], stored[3] = (255, 0, 0), (0, 255, 0), (0, 0, 255), 128
    frame = decode(save(stored, "PNG", icc_profile=swapped_rg_profile()), LIMITS).first
    expected = np.zeros_like(stored)
    expected[0], expected[1], expected[2] = (0, 255, 0), (255, 0, 0), (0, 0, 255)
    assert np.abs(frame[:3].astype(int) - expected[:3]).max() <= 2
    assert np.abs(frame[3].astype(int) - 128).max() <= 4  # neutral stays neutral


def test_non_srgb_profile_keeps_alpha() -> None:
    stored = np.zeros((4, 4, 4), np.uint8)
    stored[..., 0] = 255
    stored[..., 3] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17
    frame = decode(save(stored, "PNG", icc_profile=swapped_rg_profile()), LIMITS).first
    assert frame.shape == (4, 4, 4)
    np.testing.assert_array_equal(frame[..., 3], stored[..., 3])
    assert frame[..., 1].min() >= 253 and frame[..., 0].max() <= 2


def test_non_srgb_profile_on_jpeg() -> None:
    stored = np.zeros((16, 48, 3), np.uint8)
    stored[:, :16], stored[:, 16:32], stored[:, 32:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    data = save(stored, "JPEG", quality=100, subsampling=0, icc_profile=swapped_rg_profile())
    frame = decode(data, LIMITS).first.astype(int)
    for x, colour in ((8, (0, 255, 0)), (24, (255, 0, 0)), (40, (0, 0, 255))):
        assert np.abs(frame[8, x] - colour).max() <= 6, (x, frame[8, x])


def test_srgb_profile_is_left_alone() -> None:
    """An sRGB profile needs no conversion: the pixels come back exactly."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = gradient()
    frame = decode(save(stored, "PNG", icc_profile=srgb), LIMITS).first
    np.testing.assert_array_equal(frame, stored)


@needs_corpus
def test_corpus_generic_rgb_profile_is_converted() -> None:
    """Landscape_3.jpg carries Apple's "Generic RGB Profile" (gamma 1.8): the decode differs
    from the naive one (same orientation) everywhere a little, nowhere a lot."""
    data = (CORPUS / "Landscape_3.jpg").read_bytes()
    picture = decode(data, LIMITS)
    assert picture.source["icc"] == "Generic RGB Profile"
    naive = viewer(plain_rgb(data), 3)
    change = np.abs(picture.first.astype(int) - naive.astype(int))
    assert 2 < change.mean() < 30
    assert change.max() < 80


@needs_corpus
def test_corpus_cmyk_profile_differs_modestly_from_naive() -> None:
    data = (CORPUS / "Channel_digital_image_CMYK_color.jpg").read_bytes()
    picture = decode(data, LIMITS)
    assert picture.first.shape == (333, 500, 3)
    change = diff(picture.first, plain_rgb(data))
    assert 2 < change < 40


# --- 16-bit -----------------------------------------------------------------------------------


def deep_gradient(channels: int = 3) -> np.ndarray:
    ys, xs = np.mgrid[0:20, 0:30]
    planes = [xs * 2000 + 7, ys * 3000 + 11, (xs * ys * 97) % 65536, 65535 - ys * 1000]
    return np.stack(planes[:channels], axis=-1).astype(np.uint16)


def png16(rgb: np.ndarray) -> bytes:
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, code))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_png_stays_16_bit(channels: int) -> None:
    """16-bit PNG decodes to identical uint16 values and re-encodes to PNG losslessly."""
    pixels = deep_gradient(channels)
    data = png16(pixels)
    assert data[24] == 16  # IHDR bit depth: really a 16-bit file
    picture = decode(data, LIMITS)
    assert picture.first.dtype == np.uint16
    np.testing.assert_array_equal(picture.first, pixels)
    assert picture.source["bit_depth"] == 16
    again = decode(encode(picture, "png", 85, None), LIMITS)
    assert again.first.dtype == np.uint16
    np.testing.assert_array_equal(again.first, pixels)


def test_16_bit_grey_png() -> None:
    grey = deep_gradient(1)[:, :, 0]
    ok, buffer = cv2.imencode(".png", grey)
    assert ok
    frame = decode(buffer.tobytes(), LIMITS).first
    assert frame.dtype == np.uint16 and frame.shape == (20, 30, 3)
    for channel in range(3):
        np.testing.assert_array_equal(frame[:, :, channel], grey)


def test_16_bit_to_jpeg_is_8_bit() -> None:
    pixels = deep_gradient()
    data = encode(decode(png16(pixels), LIMITS), "jpeg", 95, None)
    back = Image.open(io.BytesIO(data))
    assert back.format == "JPEG" and back.mode == "RGB"
    assert diff(np.asarray(back), np.rint(pixels / 257).astype(np.uint8)) < 3


# --- alpha ------------------------------------------------------------------------------------


def rgba_sample() -> np.ndarray:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :, :3] = (200, 30, 30)
    rgba[:, :16, 3] = 255  # opaque left half
    rgba[:, 16:24, 3] = 128  # half transparent
    rgba[:, 24:, 3] = 0  # fully transparent right
    return rgba


def test_rgba_png_round_trip_exact() -> None:
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (13, 17, 4), dtype=np.uint8)
    picture = decode(save(rgba, "PNG"), LIMITS)
    np.testing.assert_array_equal(picture.first, rgba)
    back = Image.open(io.BytesIO(encode(picture, "png", 85, None)))
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(back), rgba)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_rgba_lossy_keeps_alpha(fmt: str) -> None:
    frame = decode(encode(pic(rgba_sample()), fmt, 90, None), LIMITS).first
    assert frame.shape == (32, 32, 4)
    alpha = frame[:, :, 3].astype(int)
    assert alpha[:, :14].min() > 240 and alpha[:, 26:].max() < 15
    assert abs(alpha[:, 18:22].mean() - 128) < 12


@pytest.mark.parametrize(
    ("background", "expected_half"),
    [
        (None, (228, 142, 142)),  # default white: 200*a + 255*(1-a), a = 128/255
        ((0, 0, 255), (100, 15, 142)),
    ],
)
def test_jpeg_flattens_onto_background(
    background: tuple[int, int, int] | None, expected_half: tuple[int, int, int]
) -> None:
    data = encode(pic(rgba_sample()), "jpeg", 95, background)
    back = Image.open(io.BytesIO(data))
    assert back.mode == "RGB"
    pixels = np.asarray(back).astype(int)
    behind = background or (255, 255, 255)
    assert np.abs(pixels[:, :12] - (200, 30, 30)).mean() < 6  # opaque kept
    assert np.abs(pixels[:, 28:] - behind).mean() < 6  # transparent -> the background
    assert np.abs(pixels[:, 19:21] - expected_half).mean() < 8  # blended


def test_grey_frames_saved_as_grey() -> None:
    """Equal-channel frames are stored as L (or LA) and come back the same."""
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    back = Image.open(io.BytesIO(encode(pic(np.dstack([grey] * 3)), "png", 85, None)))
    assert back.mode == "L"
    np.testing.assert_array_equal(np.asarray(back), grey)
    alpha = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    back = Image.open(io.BytesIO(encode(pic(np.dstack([grey] * 3 + [alpha])), "png", 85, None)))
    assert back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back)[:, :, 0], grey)
    np.testing.assert_array_equal(np.asarray(back)[:, :, 1], alpha)


def test_rgb_png_round_trip_exact() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    back = Image.open(io.BytesIO(encode(pic(rgb), "png", 85, None)))
    assert back.format == "PNG" and back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), rgb)


def test_hand_built_profiles_are_valid() -> None:
    """The test profiles parse, so the colour tests below measure the codec, not a bad file."""
    for data, name in (
        (swapped_rg_profile(), "Swapped red-green test"),
        (press_cmyk_profile(), "Test press CMYK"),
    ):
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        assert ImageCms.getProfileDescription(profile).strip() == name


def _fixed_scale(scale: float, width: int, height: int) -> float:
    return scale


def test_jpeg_shrink_on_load_matches_pillows_own_decode() -> None:
    """The fast JPEG path (libjpeg-turbo via simplejpeg) against Pillow decoding the same
    file at the same DCT scale: same size, and pixels within JPEG decoder rounding."""
    from tests import images

    data = images.encode(images.photo_like(1001, 601, seed=9), "JPEG", quality=88)
    for scale, size in ((1.0, (601, 1001)), (0.4, (301, 501)), (0.2, (151, 251)), (0.1, (76, 126))):
        fast = decode(data, Limits(), scale_for=partial(_fixed_scale, scale)).first
        reference = Image.open(io.BytesIO(data))
        reference.draft("RGB", (int(1001 * scale + 0.999), int(601 * scale + 0.999)))
        expected = np.asarray(reference.convert("RGB"))
        assert fast.shape[:2] == expected.shape[:2] == size
        assert np.abs(fast.astype(int) - expected.astype(int)).max() <= 2
