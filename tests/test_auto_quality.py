"""`quality: "auto"` and `format: "auto"` (worker/quality.py, worker/outputs.py).

Every SSIM a test asserts on is the test's own: scikit-image's structural_similarity on the
BT.601 luma of the output as Pillow decodes it, never the worker's search's own figure.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import numpy as np
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.errors import FleetError
from jobs.registry import decode_spec
from jobs.spec import TransformJob
from tests import images
from tests.fleet_harness import Fleet
from worker import codec, quality
from worker.formats import ensure_plugins
from worker.outputs import Request, encode_output
from worker.picture import Picture

skimage_metrics = pytest.importorskip("skimage.metrics")
CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/images"
PHOTOS = ["Landscape_1.jpg", "Portrait_6.jpg", "4.webp"]
CFG = load_settings({})


def _luma(rgb: np.ndarray) -> np.ndarray:
    pixels = rgb[:, :, :3].astype(np.float64)
    return pixels[:, :, 0] * 0.299 + pixels[:, :, 1] * 0.587 + pixels[:, :, 2] * 0.114


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's SSIM with Wang et al.'s Gaussian window (11 taps, sigma 1.5)."""
    return float(
        skimage_metrics.structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


def _decoded(payload: bytes) -> Image.Image:
    ensure_plugins()
    image = Image.open(io.BytesIO(payload))
    image.load()
    return image


@pytest.mark.parametrize("shape", [(300, 420), (64, 64), (1100, 90), (12, 30)])
def test_ssim_equals_scikit_image(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    ramp = np.linspace(0, 200, shape[1])[None, :] + rng.normal(0, 20, shape)
    a = np.clip(ramp, 0, 255)
    b = np.clip(a + rng.normal(0, 9, shape), 0, 255)
    ours = quality.ssim(a.astype(np.float32), b.astype(np.float32))
    assert ours == pytest.approx(reference_ssim(a, b), abs=1e-5)
    assert quality.ssim(a, a) == pytest.approx(1.0, abs=1e-9)


def test_ssim_of_a_hand_computed_case() -> None:
    # Two constant planes 100 and 110: mu 100 / 110, no variance, so every window's SSIM is
    # (2*100*110 + C1) / (100^2 + 110^2 + C1), C1 = (0.01*255)^2.
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    a, b = np.full((40, 40), 100, np.float32), np.full((40, 40), 110, np.float32)
    assert quality.ssim(a, b) == pytest.approx(expected, rel=1e-6)


def test_luma_is_bt601_and_flattens_alpha() -> None:
    frame = np.array([[[255, 0, 0, 255], [0, 0, 255, 0]]], np.uint8)
    assert quality.luma(frame, (255, 255, 255))[0].tolist() == pytest.approx([76.245, 255.0])


def _photo(width: int, height: int, seed: int = 3) -> Picture:
    return Picture([images.photo_like(width, height, seed=seed)], "png")


@pytest.mark.parametrize(
    ("fmt", "size", "target"),
    [
        ("jpeg", (320, 240), 0.97),
        ("webp", (320, 240), 0.98),
        ("avif", (300, 200), 0.96),
        ("jpeg", (1400, 1000), 0.98),  # past the proxy: tiles searched, the whole measured
    ],
)
def test_auto_quality_meets_the_target(fmt: str, size: tuple[int, int], target: float) -> None:
    picture = _photo(*size)
    out = encode_output(picture, Request("out", fmt, "auto", ssim=target), CFG, "x")
    image = _decoded(out.payload)
    assert (str(image.format).lower(), out.format, out.key) == (fmt, fmt, "out")
    assert out.quality is not None and quality.LOW <= out.quality <= quality.HIGH
    score = reference_ssim(_luma(picture.first), _luma(np.asarray(image.convert("RGB"))))
    assert score >= target
    # And it is the lowest that does, within the search's step: a few points less misses.
    if out.quality > quality.LOW + 4:
        lower = codec.encode(picture, fmt, out.quality - 4, None, CFG.avif_speed)
        low_image = np.asarray(_decoded(lower).convert("RGB"))
        assert reference_ssim(_luma(picture.first), _luma(low_image)) < target
        assert len(lower) < len(out.payload)


@pytest.mark.skipif(not CORPUS.exists(), reason="needs ../shared/corpus")
@pytest.mark.parametrize("name", PHOTOS)
def test_auto_beats_jpeg_85_on_corpus_photos_at_its_ssim(name: str) -> None:
    picture = codec.decode((CORPUS / name).read_bytes(), codec.Limits())
    source = _luma(picture.first)
    jpeg = codec.encode(picture, "jpeg", 85, None)
    jpeg_ssim = reference_ssim(source, _luma(np.asarray(_decoded(jpeg).convert("RGB"))))
    target = min(0.999, jpeg_ssim)
    out = encode_output(picture, Request("p", "auto", "auto", ssim=target), CFG, "x")
    score = reference_ssim(source, _luma(np.asarray(_decoded(out.payload).convert("RGB"))))
    assert out.format != "jpeg" and out.key == f"p.{codec.extension(out.format)}"
    assert score >= jpeg_ssim - 1e-6
    assert len(out.payload) < 0.95 * len(jpeg), (out.format, len(out.payload), len(jpeg))


def _with_hole(width: int = 200, height: int = 150) -> Picture:
    rgb = images.photo_like(width, height, seed=5)
    alpha = np.full((height, width, 1), 255, np.uint8)
    alpha[40:90, 50:120] = 0
    return Picture([np.concatenate([rgb, alpha], axis=2)], "png")


@pytest.mark.parametrize(
    ("accept", "quality_of"), [(None, "auto"), (["jpeg", "webp"], 80), (["jpeg"], "auto")]
)
def test_alpha_never_goes_to_jpeg(accept: list[str] | None, quality_of: int | str) -> None:
    request = Request("cut", "auto", quality_of, accept=tuple(accept) if accept else None)
    out = encode_output(_with_hole(), request, CFG, "x")
    assert out.format != "jpeg"
    image = _decoded(out.payload)
    assert "A" in image.getbands() or "transparency" in image.info
    assert np.asarray(image.convert("RGBA"))[60, 80, 3] == 0  # the hole is still a hole


def test_a_few_colour_graphic_stays_png_and_lossless() -> None:
    frame = np.full((240, 320, 3), 255, np.uint8)
    frame[20:60, 20:300] = (200, 30, 30)
    for x in range(20, 300, 24):  # thin stripes: sharp edges every lossy codec pays for
        frame[80:220, x : x + 3] = (20, 20, 120)
    frame[100:110, 10:310] = (0, 160, 0)
    picture = Picture([frame], "png")
    out = encode_output(picture, Request("logo", "auto", "auto"), CFG, "x")
    assert (out.format, out.key, out.quality) == ("png", "logo.png", None)
    image = _decoded(out.payload)
    assert image.mode == "P"  # written indexed
    assert np.array_equal(np.asarray(image.convert("RGB")), frame)


@pytest.mark.parametrize(
    ("key", "expected"),
    [("photo", "photo.{ext}"), ("a/photo.v2", "a/photo.v2.{ext}"), ("photo.webp", "photo.webp")],
)
def test_auto_names_the_key_by_its_format(key: str, expected: str) -> None:
    out = encode_output(_photo(160, 120), Request(key, "auto", "auto"), CFG, "x")
    assert out.key == expected.format(ext=codec.extension(out.format))
    if key.endswith(".webp"):  # the key names its format: auto keeps to it
        assert out.format == "webp" and _decoded(out.payload).format == "WEBP"


def test_default_key_takes_the_chosen_extension() -> None:
    out = encode_output(_photo(160, 120), Request(None, "auto", 85), CFG, "jobs/j1/output")
    assert out.key == f"jobs/j1/output.{codec.extension(out.format)}"
    assert out.quality is None  # given, not chosen


def _spec(**fields: object) -> TransformJob:
    body = {"operation": "resize", "input": "p.jpg", "width": 10, **fields}
    spec = decode_spec(msgspec.json.encode(body))
    assert isinstance(spec, TransformJob)
    return spec


def test_spec_takes_auto_and_refuses_contradictions() -> None:
    spec = _spec(format="auto", quality="auto", accept=["webp", "avif"], ssim=0.97)
    spec.admit(CFG)
    assert (spec.format, spec.quality, spec.accept, spec.ssim) == (
        "auto",
        "auto",
        ["webp", "avif"],
        0.97,
    )
    refused_fields: list[tuple[dict[str, object], str]] = [
        ({"accept": ["webp"]}, "$.accept"),
        ({"format": "webp", "ssim": 0.97}, "$.ssim"),
        ({"format": "auto", "accept": ["webp"], "output": "a.jpg"}, "$.accept"),
    ]
    for fields, where in refused_fields:
        with pytest.raises(FleetError) as refused:
            _spec(**fields).admit(CFG)
        assert where in refused.value.message
    invalid: list[tuple[dict[str, object], str]] = [
        ({"quality": "best"}, "$.quality"),
        ({"ssim": 1.5}, "$.ssim"),
    ]
    for fields, where in invalid:
        with pytest.raises(msgspec.ValidationError, match=f"`\\{where}`"):
            _spec(**fields)


@pytest.mark.fleet
def test_auto_through_the_fleet_names_the_key_format_and_quality(dir_fleet: Fleet) -> None:
    photo = images.encode(images.photo_like(400, 300, seed=11), "JPEG", quality=95)
    body = {
        "operation": "resize",
        "input": "auto-photo.jpg",
        "width": 200,
        "fit": "inside",
        "output": "auto/small",
        "format": "auto",
        "quality": "auto",
        "accept": ["webp", "jpeg"],
        "ssim": 0.97,
    }
    with dir_fleet.client() as client:
        assert client.put("/v1/objects/auto-photo.jpg", content=photo).status_code == 201
        reply = client.post("/v1/jobs?wait=60", json=body)
        assert reply.status_code == 200, reply.text
        job = reply.json()
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["format"] in ("webp", "jpeg")
        assert result["output"] == f"auto/small.{codec.extension(result['format'])}"
        assert isinstance(result["quality"], int)
        data = client.get(f"/v1/objects/{result['output']}").content
        refused = client.post("/v1/jobs", json={**body, "format": "webp"})
    assert refused.status_code == 400 and "$.accept" in refused.json()["error"]["message"]
    image = _decoded(data)
    assert image.size == (200, 150) and str(image.format).lower() == result["format"]
    expected = (
        Image.open(io.BytesIO(photo)).convert("RGB").resize((200, 150), Image.Resampling.LANCZOS)
    )
    assert images.mean_abs_diff(np.asarray(image.convert("RGB")), np.asarray(expected)) < 4


@pytest.mark.fleet
@pytest.mark.parametrize(
    "body",
    [
        {"operation": "convert", "format": "webp", "quality": "auto"},
        {"operation": "compress", "quality": "auto"},
        {
            "operation": "pipeline",
            "steps": [{"operation": "convert", "format": "webp", "quality": "auto"}],
        },
    ],
    ids=["convert", "compress", "pipeline-step"],
)
def test_quality_auto_on_the_re_encoding_operations(dir_fleet: Fleet, body: dict) -> None:
    """convert, compress and a pipeline's convert step take `quality: "auto"` too: the file
    meets the default target (0.98) by an SSIM the test computes itself (scikit-image)."""
    source = images.photo_like(320, 240, seed=5)
    photo = images.encode(source, "JPEG", quality=95)
    with dir_fleet.client() as client:
        assert client.put("/v1/objects/auto-re.jpg", content=photo).status_code == 201
        reply = client.post("/v1/jobs?wait=60", json={**body, "input": "auto-re.jpg"})
        assert reply.status_code == 200, reply.text
        result = reply.json()["result"]
        assert isinstance(result["quality"], int) and 1 <= result["quality"] <= 100
        data = client.get(f"/v1/objects/{result['output']}").content
    decoded = np.asarray(_decoded(data).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    assert reference_ssim(_luma(original), _luma(decoded)) >= 0.98 - 0.002
