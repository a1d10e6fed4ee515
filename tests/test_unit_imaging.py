"""Decoding and encoding at the edges (worker.imaging) and object-key rules (storage.keys)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from storage.keys import MAX_KEY_LENGTH, InvalidKey, normalize_key, tenant_key
from worker.imaging import decode, encode


def image_bytes(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth RGB gradient: lossy codecs should reproduce it closely."""
    ys, xs = np.mgrid[0:h, 0:w]
    r = xs * 255 // (w - 1)
    g = ys * 255 // (h - 1)
    b = (xs + ys) * 255 // (w + h - 2)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def decoded_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# --- decode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, world", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, b"<svg></svg>",
     bytes(range(256)) * 4],
    ids=["empty", "text", "gif-magic-only", "png-magic-only", "svg", "binary-noise"],
)
def test_decode_non_image(data: bytes) -> None:
    """Bytes that are not an image fail with IMAGE_PARSE_FAILED."""
    with pytest.raises(FleetError) as info:
        decode(data, max_megapixels=100)
    assert info.value.code is ErrorCode.IMAGE_PARSE_FAILED
    assert info.value.status == 422


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_truncated_image(fmt: str) -> None:
    """A real image cut to half its bytes fails with IMAGE_PARSE_FAILED (not a partial image)."""
    rng = np.random.default_rng(0)
    data = image_bytes(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), fmt)
    assert decode(data, max_megapixels=100).image.size == (64, 64)  # the whole one decodes
    with pytest.raises(FleetError) as info:
        decode(data[: len(data) // 2], max_megapixels=100)
    assert info.value.code is ErrorCode.IMAGE_PARSE_FAILED


def test_decode_too_large() -> None:
    """A 2000x2000 image (4 MP) exceeds a 1 MP limit."""
    data = image_bytes(np.zeros((2000, 2000), dtype=np.uint8), "PNG")
    with pytest.raises(FleetError) as info:
        decode(data, max_megapixels=1)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "2000x2000" in info.value.message


def test_decode_size_checked_before_pixels() -> None:
    """Only the header is read before the size check: a bomb with no pixel data is still
    IMAGE_TOO_LARGE, not IMAGE_PARSE_FAILED."""
    data = image_bytes(np.zeros((2000, 2000), dtype=np.uint8), "PNG")
    header_only = data[:64]  # signature + IHDR; the pixel data is gone
    with pytest.raises(FleetError) as info:
        decode(header_only, max_megapixels=1)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    with pytest.raises(FleetError) as info:  # and under a generous limit it is corrupt
        decode(header_only, max_megapixels=100)
    assert info.value.code is ErrorCode.IMAGE_PARSE_FAILED


def test_decode_at_limit_is_allowed() -> None:
    """1000x1000 is exactly 1 MP: within a 1 MP limit."""
    data = image_bytes(np.zeros((1000, 1000), dtype=np.uint8), "PNG")
    assert decode(data, max_megapixels=1).image.size == (1000, 1000)


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp"),
                                           ("GIF", "gif"), ("TIFF", "tiff")])
def test_decode_reports_format(fmt: str, name: str) -> None:
    """The decoded record names the input's format in the fleet's vocabulary."""
    decoded = decode(image_bytes(gradient(8, 8), fmt), max_megapixels=100)
    assert decoded.format == name
    assert decoded.frames == 1
    assert decoded.image.size == (8, 8)


# --- encode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_encode_png_exact(mode: str) -> None:
    """PNG is lossless: the pixels come back exactly, in the same mode."""
    rng = np.random.default_rng(1)
    channels = {"RGB": 3, "RGBA": 4, "L": 0}[mode]
    shape = (13, 17, channels) if channels else (13, 17)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "png", 85, None)
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG" and back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), pixels)


@pytest.mark.parametrize(("fmt", "pillow"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("avif", "AVIF")])
def test_encode_lossy_round_trip(fmt: str, pillow: str) -> None:
    """Lossy formats reproduce a smooth gradient with a small mean absolute error."""
    pixels = gradient()
    data = encode(Image.fromarray(pixels), fmt, 85, None)
    back = Image.open(io.BytesIO(data))
    assert back.format == pillow
    assert back.size == (64, 48)
    error = np.abs(decoded_pixels(data).astype(np.int16) - pixels.astype(np.int16)).mean()
    assert error < 6, f"{fmt} mean absolute error {error:.2f}"


def test_encode_rgba_to_jpeg_flattens_on_white() -> None:
    """JPEG has no alpha: RGBA is flattened to 3 channels over a white background."""
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :8] = (200, 30, 30, 255)  # opaque red on the left, fully transparent on the right
    data = encode(Image.fromarray(rgba), "jpeg", 95, None)
    back = Image.open(io.BytesIO(data))
    assert back.mode == "RGB"
    pixels = np.asarray(back).astype(np.int16)
    assert pixels.shape == (16, 16, 3)
    assert np.abs(pixels[:, 11:] - 255).max() < 8  # transparent -> white
    assert np.abs(pixels[:, :5] - (200, 30, 30)).mean() < 8  # opaque colour kept


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_encode_rgba_keeps_alpha_where_possible(fmt: str) -> None:
    """webp and avif store alpha, so an RGBA image stays 4-channel."""
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, 8:, 3] = 0
    back = Image.open(io.BytesIO(encode(Image.fromarray(rgba), fmt, 90, None)))
    assert back.mode == "RGBA"
    alpha = np.asarray(back)[..., 3].astype(np.int16)
    assert alpha[:, :6].min() > 240 and alpha[:, 10:].max() < 15


def test_jpeg_lower_quality_fewer_bytes() -> None:
    """Lower JPEG quality gives a smaller file."""
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    sizes = [len(encode(image, "jpeg", q, None)) for q in (10, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2], sizes


# --- object keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a//b/./c", "a/b/c"), ("photo.jpg", "photo.jpg"), ("./a", "a"), ("a/b/", "a/b"),
     ("a/./././b", "a/b"), ("x..y/..z", "x..y/..z"), ("k" * MAX_KEY_LENGTH, "k" * MAX_KEY_LENGTH)],
)
def test_normalize_key_accepts(key: str, expected: str) -> None:
    """Redundant separators and `.` segments collapse; dots inside names are fine."""
    assert normalize_key(key) == expected


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "/", "a/../b", "..", "../x", "a/..", "a\\b", "a\x00b", "a\nb", "\x1f",
     "a\x7fb", ".", "./", "//", "k" * (MAX_KEY_LENGTH + 1)],
    ids=repr,
)
def test_normalize_key_rejects(key: str) -> None:
    """Empty, absolute, parent-escaping, backslash, control-char and over-long keys are refused."""
    with pytest.raises(InvalidKey):
        normalize_key(key)


def test_invalid_key_is_a_value_error() -> None:
    """Callers that catch ValueError also catch InvalidKey."""
    assert issubclass(InvalidKey, ValueError)


def test_tenant_key_prefixes_namespace() -> None:
    """tenant_key puts the normalised key under tenants/<tenant>/."""
    assert tenant_key("acme", "a//b/./c") == "tenants/acme/a/b/c"
    assert tenant_key("t_1-x", "photo.jpg") == "tenants/t_1-x/photo.jpg"


@pytest.mark.parametrize(
    ("tenant", "key"),
    [("acme", "../other/secret"), ("acme", "/etc/passwd"), ("", "a"), ("../x", "a"),
     ("a/b", "c"), ("t" * 65, "a")],
)
def test_tenant_key_rejects(tenant: str, key: str) -> None:
    """A bad tenant id or a key that would escape the namespace is refused."""
    with pytest.raises(InvalidKey):
        tenant_key(tenant, key)
