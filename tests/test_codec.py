"""worker.codec: decode (limits, pages, EXIF orientation, colour management, 16-bit, alpha,
animation) and encode (formats, quality, alpha, metadata-free output); plus the object-key
rules that used to live in the old imaging test module.

Expectations are computed independently in the tests: orientation from the TIFF 6.0 table,
colour conversion from hand-built ICC profiles with known answers, sizes from the corpus's
SOURCES.md. The shared corpus (../shared/corpus/images) is optional: its tests skip without it.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from jobs.errors import ErrorCode, FleetError
from storage.keys import MAX_KEY_LENGTH, InvalidKey, normalize_key, tenant_key
from worker import codec
from worker.codec import Limits, decode, encode
from worker.picture import Picture

LIMITS = Limits()
ORIENTATION = 0x0112
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "images"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")


# --- helpers ----------------------------------------------------------------------------------


def save(pixels: np.ndarray | Image.Image, fmt: str, mode: str | None = None,
         **options: object) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def with_orientation(pixels: np.ndarray, fmt: str, orientation: int, **options: object) -> bytes:
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
    pixels = np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), (xs * 7 + ys * 3) % 64],
                      axis=-1).astype(np.uint8)
    pixels[:6, :8] = (0, 0, 255)
    return pixels


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth RGB gradient: lossy codecs should reproduce it closely."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1),
                     (xs + ys) * 255 // (w + h - 2)], axis=-1).astype(np.uint8)


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
    index = {1: (i, j), 2: (i, wd - 1 - j), 3: (hd - 1 - i, wd - 1 - j), 4: (hd - 1 - i, j),
             5: (j, i), 6: (wd - 1 - j, i), 7: (wd - 1 - j, hd - 1 - i),
             8: (j, hd - 1 - i)}[orientation]
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
SRGB_D50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                     [0.2225045, 0.7168786, 0.0606169],
                     [0.0139322, 0.0971045, 0.7141733]])


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_
            + b"\0" * 8 + b"\0" * 3 + b"\0" * 67)


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A minimal ICC v2.1 profile."""
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (struct.pack(">I", start + len(body)) + b"\0" * 4 + bytes([2, 0x10, 0, 0])
              + device_class + space + pcs + b"\0" * 12 + b"acsp" + b"\0" * 28
              + _s15(D50[0]) + _s15(D50[1]) + _s15(D50[2]) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def swapped_rg_profile() -> bytes:
    """An RGB matrix/TRC profile whose red colorant is sRGB's green and vice versa: pure red
    in it is pure green in sRGB. A colour-managed decoder must swap them."""
    red, green, blue = SRGB_D50.T
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256))
    return _icc(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", _desc("Swapped red-green test")), (b"wtpt", _xyz(*D50)),
        (b"rXYZ", _xyz(*green)), (b"gXYZ", _xyz(*red)), (b"bXYZ", _xyz(*blue)),
        (b"rTRC", gamma), (b"gTRC", gamma), (b"bTRC", gamma)])


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    c = np.asarray(rgb, float) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_D50 @ linear / np.array(D50)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


# A press-like CMYK profile: what each ink corner looks like in sRGB. Paper is white and K is
# black (so no rendering intent moves them); the inks are duller than the naive formula's.
PRESS = {  # (c, m, y) with k = 0
    (0, 0, 0): (255, 255, 255), (1, 0, 0): (0, 160, 220), (0, 1, 0): (230, 0, 140),
    (0, 0, 1): (255, 235, 0), (0, 1, 1): (220, 30, 40), (1, 0, 1): (0, 150, 70),
    (1, 1, 0): (40, 50, 150), (1, 1, 1): (20, 20, 20),
}


def press_cmyk_profile() -> bytes:
    """A CMYK -> Lab profile: one lut16 (mft2) A2B0 with a 2-point grid at the ink corners."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lightness, a, b = srgb_to_lab((0, 0, 0) if k else PRESS[(c, m, y)])
                    clut += struct.pack(">HHH", round(lightness * 652.8),
                                        round((a + 128) * 256), round((b + 128) * 256))
    identity = b"".join(_s15(float(i == j)) for i in range(3) for j in range(3))
    lut = (b"mft2\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
           + struct.pack(">HH", 0, 65535) * 4 + clut + struct.pack(">HH", 0, 65535) * 3)
    return _icc(b"prtr", b"CMYK", b"Lab ", [
        (b"desc", _desc("Test press CMYK")), (b"wtpt", _xyz(*D50)), (b"A2B0", lut)])


def test_hand_built_profiles_are_valid() -> None:
    """The test profiles parse, so the colour tests below measure the codec, not a bad file."""
    for data, name in ((swapped_rg_profile(), "Swapped red-green test"),
                       (press_cmyk_profile(), "Test press CMYK")):
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        assert ImageCms.getProfileDescription(profile).strip() == name


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
    chunk = (struct.pack(">I", len(payload)) + b"eXIf" + payload
             + struct.pack(">I", zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF))
    end_of_ihdr = 8 + 25
    picture = decode(png[:end_of_ihdr] + chunk + png[end_of_ihdr:], LIMITS)
    assert picture.source["orientation"] == 8
    assert picture.first.dtype == np.uint16
    np.testing.assert_array_equal(picture.first, viewer(deep, 8))


# --- colour: CMYK and ICC ---------------------------------------------------------------------

INKS = {"red": (0, 255, 255, 0), "cyan": (255, 0, 0, 0), "paper": (0, 0, 0, 0),
        "black": (0, 0, 0, 255), "blue": (255, 255, 0, 0)}


def cmyk_jpeg(icc: bytes | None = None) -> bytes:
    """A CMYK JPEG of 16x16 ink patches, one per INKS entry, left to right."""
    patches = np.concatenate([np.full((16, 16, 4), ink, np.uint8) for ink in INKS.values()],
                             axis=1)
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
    expected = {"red": PRESS[(0, 1, 1)], "cyan": PRESS[(1, 0, 0)], "paper": (255, 255, 255),
                "black": (0, 0, 0), "blue": PRESS[(1, 1, 0)]}
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


def picture_of(frame: np.ndarray, fmt: str = "png") -> Picture:
    return Picture(frames=[frame], format=fmt)


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
    frame = decode(encode(picture_of(rgba_sample()), fmt, 90, None), LIMITS).first
    assert frame.shape == (32, 32, 4)
    alpha = frame[:, :, 3].astype(int)
    assert alpha[:, :14].min() > 240 and alpha[:, 26:].max() < 15
    assert abs(alpha[:, 18:22].mean() - 128) < 12


@pytest.mark.parametrize(("background", "expected_half"), [
    (None, (228, 142, 142)),  # default white: 200*a + 255*(1-a), a = 128/255
    ((0, 0, 255), (100, 15, 142)),
])
def test_jpeg_flattens_onto_background(background: tuple[int, int, int] | None,
                                       expected_half: tuple[int, int, int]) -> None:
    data = encode(picture_of(rgba_sample()), "jpeg", 95, background)
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
    back = Image.open(io.BytesIO(encode(picture_of(np.dstack([grey] * 3)), "png", 85, None)))
    assert back.mode == "L"
    np.testing.assert_array_equal(np.asarray(back), grey)
    alpha = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    back = Image.open(io.BytesIO(
        encode(picture_of(np.dstack([grey] * 3 + [alpha])), "png", 85, None)))
    assert back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back)[:, :, 0], grey)
    np.testing.assert_array_equal(np.asarray(back)[:, :, 1], alpha)


def test_rgb_png_round_trip_exact() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    back = Image.open(io.BytesIO(encode(picture_of(rgb), "png", 85, None)))
    assert back.format == "PNG" and back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), rgb)


# --- animation, pages -------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
DURATIONS = [100, 200, 300, 400]


def animation(fmt: str, loop: int = 0) -> bytes:
    frames = [Image.new("RGB", (24, 16), colour) for colour in COLOURS]
    options: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    return save(frames[0], fmt, save_all=True, append_images=frames[1:],
                duration=DURATIONS, loop=loop, **options)


def frame_colours(picture: Picture) -> list[np.ndarray]:
    return [frame[8, 12, :3].astype(int) for frame in picture.frames]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_decode(fmt: str) -> None:
    picture = decode(animation(fmt), LIMITS, animated=True)
    assert len(picture.frames) == 4
    assert all(frame.shape[:2] == (16, 24) for frame in picture.frames)
    for seen, colour in zip(frame_colours(picture), COLOURS, strict=True):
        np.testing.assert_array_equal(seen, colour)
    assert picture.durations == DURATIONS
    assert picture.loop == 0
    assert picture.source["frames"] == 4


@pytest.mark.parametrize("source", ["GIF", "WEBP"])
@pytest.mark.parametrize("target", ["gif", "webp"])
@pytest.mark.parametrize("loop", [0, 3])
def test_animation_round_trip(source: str, target: str, loop: int) -> None:
    """Decode all frames, encode as gif/webp, decode again: frames, timing and loop survive."""
    picture = decode(animation(source, loop), LIMITS, animated=True)
    assert picture.loop == loop
    data = encode(picture, target, 90, None)
    assert Image.open(io.BytesIO(data)).format == target.upper()
    again = decode(data, LIMITS, animated=True)
    assert len(again.frames) == 4
    for seen, colour in zip(frame_colours(again), COLOURS, strict=True):
        assert np.abs(seen - colour).max() <= 8, (seen, colour)
    assert again.durations == DURATIONS  # multiples of 10 ms survive GIF's centiseconds
    assert again.loop == loop


def test_gif_durations_quantised_to_10ms() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in COLOURS]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:],
                duration=[104, 200, 300, 400], loop=0)
    picture = decode(data, LIMITS, animated=True)
    again = decode(encode(picture, "gif", 90, None), LIMITS, animated=True)
    assert all(d % 10 == 0 for d in again.durations)
    assert abs(again.durations[0] - 104) < 10 and again.durations[1:] == DURATIONS[1:]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_not_animated_reads_one_page(fmt: str) -> None:
    data = animation(fmt)
    for page, colour in enumerate(COLOURS):
        picture = decode(data, LIMITS, page=page)
        assert len(picture.frames) == 1
        np.testing.assert_array_equal(frame_colours(picture)[0], colour)
        assert picture.durations == [] and picture.loop is None


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_page_out_of_range(fmt: str) -> None:
    message = fails_with(ErrorCode.PAGE_OUT_OF_RANGE, animation(fmt), page=4)
    assert "4" in message
    fails_with(ErrorCode.PAGE_OUT_OF_RANGE, save(gradient(), "PNG"), page=1)


def test_encode_single_frame_formats_keep_the_first_frame() -> None:
    picture = decode(animation("GIF"), LIMITS, animated=True)
    for fmt in ("png", "jpeg"):
        back = decode(encode(picture, fmt, 95, None), LIMITS, animated=True)
        assert len(back.frames) == 1
        assert np.abs(frame_colours(back)[0] - COLOURS[0]).max() <= 8


def test_multipage_tiff_pages() -> None:
    pages = [Image.new("RGB", (10 + 2 * i, 8), colour) for i, colour in enumerate(COLOURS[:3])]
    data = save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    for index, colour in enumerate(COLOURS[:3]):
        picture = decode(data, LIMITS, page=index)
        assert picture.format == "tiff"
        assert picture.first.shape == (8, 10 + 2 * index, 3)
        np.testing.assert_array_equal(picture.first[4, 4], colour)
    fails_with(ErrorCode.PAGE_OUT_OF_RANGE, data, page=3)


# --- limits and broken input ------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG, built with zlib: 81 MP costs ~10 KB of file."""
    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * height, 9)
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


def test_header_megapixels_over_limit() -> None:
    bomb = bilevel_png(9000, 9000)
    assert len(bomb) < 50_000 and Image.open(io.BytesIO(bomb)).size == (9000, 9000)
    message = fails_with(ErrorCode.IMAGE_TOO_LARGE, bomb, Limits(max_megapixels=50))
    assert "9000x9000" in message


def test_size_checked_before_pixels() -> None:
    """Only the header is read before the size check: a bomb whose pixel data is gone is
    still IMAGE_TOO_LARGE; under a generous limit the same bytes are corrupt."""
    header = bilevel_png(9000, 9000)[:64]  # signature, IHDR and the start of IDAT
    fails_with(ErrorCode.IMAGE_TOO_LARGE, header, Limits(max_megapixels=50))
    small = bilevel_png(2000, 2000)[:64]
    fails_with(ErrorCode.IMAGE_TOO_LARGE, small, Limits(max_megapixels=1))
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, small, Limits(max_megapixels=100))


def test_at_limit_is_allowed() -> None:
    """1000x1000 is exactly 1 MP: within a 1 MP limit."""
    assert decode(bilevel_png(1000, 1000), Limits(max_megapixels=1)).first.shape == (1000, 1000, 3)
    fails_with(ErrorCode.IMAGE_TOO_LARGE, bilevel_png(1001, 1000), Limits(max_megapixels=1))


def test_frames_over_limit() -> None:
    data = animation("GIF")
    fails_with(ErrorCode.IMAGE_TOO_LARGE, data, Limits(max_frames=3), animated=True)
    assert len(decode(data, Limits(max_frames=4), animated=True).frames) == 4
    assert len(decode(data, Limits(max_frames=3)).frames) == 1  # one page is one frame


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, world", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, b"<svg></svg>",
     bytes(range(256)) * 4],
    ids=["empty", "text", "gif-magic-only", "png-magic-only", "svg", "binary-noise"],
)
def test_decode_non_image(data: bytes) -> None:
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_truncated_image(fmt: str) -> None:
    """A real image cut to half its bytes fails (not a partial image)."""
    rng = np.random.default_rng(0)
    data = save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), fmt)
    assert decode(data, LIMITS).first.shape == (64, 64, 3)  # the whole one decodes
    fails_with(ErrorCode.IMAGE_PARSE_FAILED, data[: len(data) // 2])


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp"),
                                           ("GIF", "gif"), ("TIFF", "tiff"), ("AVIF", "avif")])
def test_decode_reports_format(fmt: str, name: str) -> None:
    picture = decode(save(gradient(8, 8), fmt), LIMITS)
    assert picture.format == name
    assert len(picture.frames) == 1 and picture.first.shape == (8, 8, 3)


def test_decode_bmp() -> None:
    """BMP is accepted (exact pixels); its default output format is one the fleet writes."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    picture = decode(save(pixels, "BMP"), LIMITS)
    np.testing.assert_array_equal(picture.first, pixels)
    assert picture.format in codec.CONTENT_TYPES


# --- encode: formats, quality, no metadata ----------------------------------------------------


@pytest.mark.parametrize(("fmt", "pillow"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("avif", "AVIF")])
def test_lossy_round_trip_close(fmt: str, pillow: str) -> None:
    pixels = gradient()
    data = encode(picture_of(pixels), fmt, 85, None)
    back = Image.open(io.BytesIO(data))
    assert back.format == pillow and back.size == (64, 48)
    assert diff(decode(data, LIMITS).first, pixels) < 6


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_lower_quality_fewer_bytes(fmt: str) -> None:
    rng = np.random.default_rng(2)
    noisy = picture_of(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    sizes = [len(encode(noisy, fmt, q, None)) for q in (10, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2], sizes


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_encode_writes_no_metadata(fmt: str) -> None:
    """An input with EXIF (orientation 6) and an ICC profile: the output carries neither and
    its pixels are upright."""
    stored = asymmetric(60, 80)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Camera maker"
    data = save(image, "JPEG", quality=95, exif=exif, icc_profile=swapped_rg_profile())
    picture = decode(data, LIMITS)
    out = Image.open(io.BytesIO(encode(picture, fmt, 95, None)))
    tags = set(out.getexif())
    # orientation, make, the EXIF and GPS sub-IFDs, XMP, IPTC, an embedded ICC profile
    assert not tags & {0x0112, 0x010F, 0x8769, 0x8825, 0x02BC, 0x83BB, 0x8773}, tags
    if fmt != "tiff":  # a TIFF's own structure (size, strips...) lives in the same IFD
        assert not tags
    assert not out.info.get("icc_profile")
    assert "exif" not in out.info
    assert out.size == (60, 80)  # upright: the stored 80x60 turned


# --- the shared corpus ------------------------------------------------------------------------

# file -> (width, height upright, frames) or the error it must fail with; from SOURCES.md.
CORPUS_EXPECTED: dict[str, tuple[int, int, int] | ErrorCode] = {
    "2569067123_aca715a2ee_o.jpg": (2725, 2225, 1),
    "4.webp": (1024, 772, 1),
    "Channel_digital_image_CMYK_color.jpg": (500, 333, 1),
    "Channel_digital_image_CMYK_color_no_profile.jpg": (500, 333, 1),
    "G31D.TIF": (2464, 3248, 1),
    "Landscape_1.jpg": (600, 450, 1),
    "Landscape_3.jpg": (600, 450, 1),
    "Landscape_6.jpg": (600, 450, 1),
    "Portrait_6.jpg": (450, 600, 1),
    "blackbug.png": (2048, 1536, 1),
    "giant-image.jpg": ErrorCode.IMAGE_TOO_LARGE,
    "icc_profile_big.jpg": (425, 250, 1),
    "pitm.avif": (4096, 800, 1),
    "rotating-squares.gif": (80, 80, 30),
    "rotating-squares.webp": (80, 80, 9),
    "tbgn2c16.png": (32, 32, 1),
    "truncated.jpg": ErrorCode.IMAGE_PARSE_FAILED,
    "uncompressed_tiff.tiff": (246, 345, 1),
}


@needs_corpus
def test_corpus_is_fully_listed() -> None:
    """Every corpus image has an expected outcome here (a new file must be added)."""
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".md"}
    assert files == set(CORPUS_EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_file(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    expected = CORPUS_EXPECTED[name]
    if isinstance(expected, ErrorCode):
        fails_with(expected, data)
        return
    width, height, frames = expected
    picture = decode(data, LIMITS, animated=True)
    assert (picture.width, picture.height) == (width, height)
    assert len(picture.frames) == frames
    for frame in picture.frames:
        assert frame.shape[:2] == (height, width) and frame.shape[2] in (3, 4)
        assert frame.dtype in (np.uint8, np.uint16)
        assert frame.max() > frame.min()  # not a blank decode


@needs_corpus
def test_corpus_landscapes_show_the_same_picture() -> None:
    """The Landscape_N files are one photo stored N ways: upright, they match."""
    shown = {n: decode((CORPUS / f"Landscape_{n}.jpg").read_bytes(), LIMITS).first
             for n in (1, 3, 6)}
    assert diff(shown[1], shown[3]) < 10 and diff(shown[3], shown[6]) < 10
    assert diff(shown[1], shown[6]) < 10
    assert diff(shown[1], shown[3][::-1, ::-1]) > 20  # the metric does tell wrong turns apart


@needs_corpus
def test_corpus_special_files() -> None:
    bug = decode((CORPUS / "blackbug.png").read_bytes(), LIMITS).first
    assert bug.shape[2] == 4 and bug[:, :, 3].min() < 255
    deep = decode((CORPUS / "tbgn2c16.png").read_bytes(), LIMITS)
    assert deep.first.dtype == np.uint16 and deep.source["bit_depth"] == 16
    gif = decode((CORPUS / "rotating-squares.gif").read_bytes(), LIMITS, animated=True)
    assert gif.durations == [30] * 30 and gif.loop == 0
    webp = decode((CORPUS / "rotating-squares.webp").read_bytes(), LIMITS, animated=True)
    assert webp.loop == 0 and len(webp.durations) == 9 and min(webp.durations) > 0
    giant = fails_with(ErrorCode.IMAGE_TOO_LARGE, (CORPUS / "giant-image.jpg").read_bytes())
    assert "20000x14000" in giant


# --- object keys (carried over from the old imaging test module) ------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a//b/./c", "a/b/c"), ("photo.jpg", "photo.jpg"), ("./a", "a"), ("a/b/", "a/b"),
     ("a/./././b", "a/b"), ("x..y/..z", "x..y/..z"), ("k" * MAX_KEY_LENGTH, "k" * MAX_KEY_LENGTH)],
)
def test_normalize_key_accepts(key: str, expected: str) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "/", "a/../b", "..", "../x", "a/..", "a\\b", "a\x00b", "a\nb", "\x1f",
     "a\x7fb", ".", "./", "//", "k" * (MAX_KEY_LENGTH + 1)],
    ids=repr,
)
def test_normalize_key_rejects(key: str) -> None:
    with pytest.raises(InvalidKey):
        normalize_key(key)


def test_invalid_key_is_a_value_error() -> None:
    assert issubclass(InvalidKey, ValueError)


def test_tenant_key_prefixes_namespace() -> None:
    assert tenant_key("acme", "a//b/./c") == "tenants/acme/a/b/c"
    assert tenant_key("t_1-x", "photo.jpg") == "tenants/t_1-x/photo.jpg"


@pytest.mark.parametrize(
    ("tenant", "key"),
    [("acme", "../other/secret"), ("acme", "/etc/passwd"), ("", "a"), ("../x", "a"),
     ("a/b", "c"), ("t" * 65, "a")],
)
def test_tenant_key_rejects(tenant: str, key: str) -> None:
    with pytest.raises(InvalidKey):
        tenant_key(tenant, key)
