"""Every operation through `POST /v1/jobs` on a real fleet, with the README's own examples."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
from PIL import Image

from jobs.registry import OPERATIONS, example_body
from tests import images
from tests.fleet_harness import Fleet
from tests.fleet_helpers import upload_examples

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "images"


def _run(client: httpx.Client, body: dict) -> dict:
    response = client.post("/v1/jobs?wait=60", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_operation_runs_its_documented_example(dir_fleet: Fleet, name: str) -> None:
    body = example_body(OPERATIONS[name])
    with dir_fleet.client() as client:
        upload_examples(client)
        job = _run(client, body)
        assert job["status"] == "succeeded", job
        result = job["result"]
        if "output" not in result:  # facts-only operations: their specs take no output
            fields = msgspec.structs.fields(OPERATIONS[name].spec)
            assert "output" not in {f.encode_name for f in fields}
            return
        data = client.get(f"/v1/objects/{result['output']}").content
    image = Image.open(io.BytesIO(data))
    assert image.size == (result["width"], result["height"])
    assert image.format is not None
    assert (
        image.format.lower()
        == {
            "jpeg": "jpeg",
            "png": "png",
            "webp": "webp",
            "avif": "avif",
            "gif": "gif",
            "tiff": "tiff",
        }[result["format"]]
    )
    assert not image.getexif(), "outputs carry no EXIF"


def test_metadata_and_dominant_color_results(dir_fleet: Fleet) -> None:
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :40] = (10, 120, 200)  # two thirds one colour
    pixels[:, 40:] = (250, 250, 0)
    with dir_fleet.client() as client:
        client.put(
            "/v1/objects/two.jpg", content=images.encode(pixels, "JPEG", orientation=6, quality=95)
        ).raise_for_status()
        meta = _run(client, {"operation": "metadata", "input": "two.jpg"})["result"]["metadata"]
        dominant = _run(client, {"operation": "dominant-color", "input": "two.jpg"})["result"]
    assert (meta["width"], meta["height"], meta["orientation"]) == (40, 60, 6)
    assert meta["format"] == "jpeg" and meta["has_exif"] is True
    r, g, b = (dominant["dominant"][c] for c in "rgb")
    assert abs(r - 10) <= 6 and abs(g - 120) <= 6 and abs(b - 200) <= 6
    assert dominant["hex"] == f"#{r:02x}{g:02x}{b:02x}"


def test_animated_resize_keeps_every_frame_and_timing(fleet: Fleet) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    frames = [Image.new("RGB", (40, 30), c) for c in colours]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[100, 200, 300, 400],
        loop=0,
    )
    with fleet.client() as client:
        client.put("/v1/objects/anim.gif", content=buffer.getvalue()).raise_for_status()
        job = _run(
            client,
            {
                "operation": "resize",
                "input": "anim.gif",
                "width": 20,
                "fit": "inside",
                "animated": True,
            },
        )
        assert job["status"] == "succeeded", job
        assert job["result"]["frames"] == 4 and job["result"]["format"] == "gif"
        out = Image.open(io.BytesIO(client.get(f"/v1/objects/{job['result']['output']}").content))
    assert getattr(out, "n_frames", 1) == 4 and out.size == (20, 15)
    durations, seen = [], []
    for index in range(4):
        out.seek(index)
        durations.append(out.info["duration"])
        pixel = out.convert("RGB").getpixel((10, 7))
        assert isinstance(pixel, tuple)
        seen.append(pixel)
    assert durations == [100, 200, 300, 400]
    for got, want in zip(seen, colours, strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8
    assert out.info.get("loop") == 0


def test_page_beyond_the_input_fails_with_its_code(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        client.put(
            "/v1/objects/one.png", content=images.encode(images.photo_like(20, 20))
        ).raise_for_status()
        job = _run(client, {"operation": "grayscale", "input": "one.png", "page": 3})
    assert job["status"] == "failed" and job["error"]["code"] == "PAGE_OUT_OF_RANGE", job


def test_pipeline_steps_run_in_order_and_bad_steps_are_refused_up_front(dir_fleet: Fleet) -> None:
    pixels = images.photo_like(400, 300, seed=9)
    with dir_fleet.client() as client:
        client.put("/v1/objects/p.png", content=images.encode(pixels)).raise_for_status()
        job = _run(
            client,
            {
                "operation": "pipeline",
                "input": "p.png",
                "steps": [
                    {"operation": "crop", "rect": {"x": 0, "y": 0, "width": 200, "height": 300}},
                    {"operation": "rotate", "angle": 90},
                    {"operation": "resize", "width": 150, "fit": "fill", "height": 50},
                    {"operation": "convert", "format": "webp"},
                ],
            },
        )
        assert job["status"] == "succeeded", job
        assert (job["result"]["width"], job["result"]["height"]) == (150, 50)
        assert job["result"]["format"] == "webp"
        assert [s["operation"] for s in job["result"]["steps"]] == [
            "crop",
            "rotate",
            "resize",
            "convert",
        ]
        assert (job["result"]["steps"][1]["width"], job["result"]["steps"][1]["height"]) == (
            300,
            200,
        )
        bad = client.post(
            "/v1/jobs",
            json={
                "operation": "pipeline",
                "input": "p.png",
                "steps": [{"operation": "grayscale"}, {"operation": "blur", "sigma": 0}],
            },
        )
    assert bad.status_code == 400
    assert "`$.steps[1].sigma`" in bad.json()["error"]["message"]


def _corpus_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(p.name for p in CORPUS.iterdir() if p.suffix.lower() != ".md")


EXPECTED_FAILURES = {
    "truncated.jpg": "IMAGE_PARSE_FAILED",
}
REFUSED_AT_SUBMISSION = {"giant-image.jpg": "IMAGE_TOO_LARGE"}  # 280 MP, from its header


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_images_process_or_fail_with_their_code(dir_fleet: Fleet, name: str) -> None:
    with dir_fleet.client() as client:
        client.put(f"/v1/objects/corpus/{name}", content=(CORPUS / name).read_bytes())
        body = {
            "operation": "pipeline",
            "input": f"corpus/{name}",
            "animated": True,
            "steps": [
                {"operation": "resize", "width": 64, "fit": "inside"},
                {"operation": "sharpen"},
            ],
        }
        if name in REFUSED_AT_SUBMISSION:
            refused = client.post("/v1/jobs?wait=60", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == REFUSED_AT_SUBMISSION[name]
            return
        job = _run(client, body)
    if name in EXPECTED_FAILURES:
        assert job["status"] == "failed" and job["error"]["code"] == EXPECTED_FAILURES[name]
    else:
        assert job["status"] == "succeeded", job
        assert job["result"]["width"] <= 64


def test_sixteen_bit_png_stays_sixteen_bit(dir_fleet: Fleet) -> None:
    import cv2

    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 31).astype(np.uint16)
    rgb = np.dstack([ramp, 65535 - ramp, ramp // 2])
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])  # OpenCV writes BGR
    assert ok
    with dir_fleet.client() as client:
        client.put("/v1/objects/deep.png", content=png.tobytes()).raise_for_status()
        job = _run(
            client,
            {
                "operation": "crop",
                "input": "deep.png",
                "rect": {"x": 8, "y": 4, "width": 32, "height": 16},
            },
        )
        assert job["status"] == "succeeded", job
        out = client.get(f"/v1/objects/{job['result']['output']}").content
    decoded = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.dtype == np.uint16
    assert np.array_equal(decoded[:, :, ::-1], rgb[4:20, 8:40])  # lossless, all 16 bits


def test_convert_animated_gif_to_webp_keeps_the_animation(dir_fleet: Fleet) -> None:
    frames = [Image.new("RGB", (24, 24), c) for c in [(250, 0, 0), (0, 0, 250), (0, 250, 0)]]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], duration=[80, 160, 240], loop=3
    )
    with dir_fleet.client() as client:
        client.put("/v1/objects/a.gif", content=buffer.getvalue()).raise_for_status()
        job = _run(
            client, {"operation": "convert", "input": "a.gif", "format": "webp", "animated": True}
        )
        assert job["status"] == "succeeded", job
        out = Image.open(io.BytesIO(client.get(f"/v1/objects/{job['result']['output']}").content))
    assert out.format == "WEBP" and getattr(out, "n_frames", 1) == 3 and out.info.get("loop") == 3
    durations = []
    for index in range(3):
        out.seek(index)
        out.load()
        durations.append(out.info["duration"])
    assert durations == [80, 160, 240]
