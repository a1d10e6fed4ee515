"""Crop jobs end to end over HTTP: gateway -> Redis -> Celery worker -> object store.

Every test runs against the directory store and against SeaweedFS S3.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests import images
from tests.fleet_harness import Fleet, wait_for_job

EXAMPLE_JOB = {
    "operation": "crop",
    "input": "photo.jpg",
    "output": "cropped.jpg",
    "rect": {"x": 100, "y": 50, "width": 800, "height": 600},
    "format": "jpeg",
    "quality": 90,
}


def test_spec_example_job_crops_the_auto_oriented_region(fleet: Fleet) -> None:
    # Stored sideways (900 wide, 1200 high) with EXIF orientation 6: upright it is 1200x900.
    stored = images.photo_like(900, 1200, seed=1)
    photo = images.encode(stored, "JPEG", orientation=6, quality=95)
    with fleet.client() as client:
        assert client.put("/v1/objects/photo.jpg", content=photo).status_code == 201
        submitted = client.post("/v1/jobs", json=EXAMPLE_JOB)
        assert submitted.status_code == 202, submitted.text
        job = wait_for_job(client, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["crop"] == {"x": 100, "y": 50, "width": 800, "height": 600}
        assert job["result"]["output"] == "cropped.jpg"
        output = client.get("/v1/objects/cropped.jpg")
    assert output.status_code == 200
    result = Image.open(io.BytesIO(output.content))
    assert (result.format, result.size) == ("JPEG", (800, 600))
    expected = images.upright(images.decode(photo), 6)[50:650, 100:900]
    assert images.mean_abs_diff(np.asarray(result.convert("RGB")), expected) < 3.0


def _submit_and_wait(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs?wait=30", json=body)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def test_gravity_crops_report_and_extract_their_window(fleet: Fleet) -> None:
    # A faint grey gradient with one noise patch of the same mean brightness: the window
    # exactly on the patch has the highest variance (a half-covering window mixes in
    # low-variance grey of equal mean, so it scores lower).
    y, x = np.mgrid[0:240, 0:320]
    grey = (120 + (x + y) // 70).astype(np.uint8)
    pixels = np.repeat(grey[:, :, None], 3, axis=2)
    rng = np.random.default_rng(3)
    pixels[150:210, 40:120] = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    data = images.encode(pixels, "PNG")
    cases: dict[str, dict[str, Any]] = {
        "center": {"gravity": "center"},
        "focal_point": {"gravity": "focal_point", "focal_x": 0.9, "focal_y": 0.1},
        "entropy": {"gravity": "entropy"},
    }
    expected_origin = {"center": (120, 90), "focal_point": (240, 0), "entropy": (40, 150)}
    with fleet.client() as client:
        client.put("/v1/objects/gravity.png", content=data).raise_for_status()
        for name, fields in cases.items():
            job = _submit_and_wait(
                client,
                {"operation": "crop", "input": "gravity.png", "width": 80, "height": 60, **fields},
            )
            assert job["status"] == "succeeded", job
            crop = job["result"]["crop"]
            assert (crop["x"], crop["y"]) == expected_origin[name], name
            assert (crop["width"], crop["height"]) == (80, 60)
            assert job["result"]["format"] == "png"  # default: same as input
            out = client.get(f"/v1/objects/{job['result']['output']}").content
            x, y = crop["x"], crop["y"]
            assert np.array_equal(images.decode(out), pixels[y : y + 60, x : x + 80]), name


def test_inline_input_and_inline_output(fleet: Fleet) -> None:
    pixels = images.photo_like(64, 48, seed=4)
    body = {
        "operation": "crop",
        "input": {"inline": base64.b64encode(images.encode(pixels)).decode()},
        "rect": {"x": 8, "y": 4, "width": 32, "height": 16},
        "inline": True,
        "format": "png",
    }
    with fleet.client() as client:
        job = _submit_and_wait(client, body)
    assert job["status"] == "succeeded", job
    assert job["spec"]["input"] == {"inputKey": f"jobs/{job['id']}/input"}  # no bytes kept
    out = base64.b64decode(job["result"]["data_base64"])
    assert np.array_equal(images.decode(out), pixels[4:20, 8:40])


def test_out_of_bounds_and_undecodable_inputs_fail_and_the_worker_keeps_serving(
    fleet: Fleet,
) -> None:
    with fleet.client() as client:
        client.put(
            "/v1/objects/small.png", content=images.encode(images.photo_like(50, 40))
        ).raise_for_status()
        junk = b"\xff\xd8 this is not a jpeg"
        client.put("/v1/objects/junk.jpg", content=junk).raise_for_status()
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"input": "small.png", "rect": {"x": 10, "y": 0, "width": 41, "height": 10}},
                "CROP_OUT_OF_BOUNDS",
            ),
            (
                {"input": "small.png", "gravity": "entropy", "width": 51, "height": 10},
                "CROP_OUT_OF_BOUNDS",
            ),
            (
                {"input": "junk.jpg", "rect": {"x": 0, "y": 0, "width": 1, "height": 1}},
                "IMAGE_PARSE_FAILED",
            ),
        ]
        for fields, code in cases:
            job = _submit_and_wait(client, {"operation": "crop", **fields})
            assert job["status"] == "failed" and job["error"]["code"] == code, job
            assert job["error"]["message"]
        after = _submit_and_wait(
            client,
            {
                "operation": "crop",
                "input": "small.png",
                "rect": {"x": 0, "y": 0, "width": 5, "height": 5},
            },
        )
        assert after["status"] == "succeeded", after


def test_truncated_jpeg_fails_with_parse_error(fleet: Fleet) -> None:
    whole = images.encode(images.photo_like(400, 300, seed=5), "JPEG", quality=90)
    with fleet.client() as client:
        client.put("/v1/objects/cut.jpg", content=whole[: len(whole) // 2]).raise_for_status()
        job = _submit_and_wait(
            client,
            {
                "operation": "crop",
                "input": "cut.jpg",
                "rect": {"x": 0, "y": 0, "width": 10, "height": 10},
            },
        )
    assert job["status"] == "failed" and job["error"]["code"] == "IMAGE_PARSE_FAILED", job


def test_image_bomb_refused_from_its_header(fleet: Fleet) -> None:
    # 9000 x 9000 = 81 MP of 1-bit pixels compresses to a few KB; the test fleet allows 40 MP.
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 200_000
    with fleet.client() as client:
        client.put("/v1/objects/bomb.png", content=buffer.getvalue()).raise_for_status()
        refused = client.post(
            "/v1/jobs?wait=30",
            json={
                "operation": "crop",
                "input": "bomb.png",
                "rect": {"x": 0, "y": 0, "width": 10, "height": 10},
            },
        )
    # Refused at submission, from the header: no job, no hold, nothing decoded.
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "IMAGE_TOO_LARGE"
    assert "81.0 MP" in refused.json()["error"]["message"]
