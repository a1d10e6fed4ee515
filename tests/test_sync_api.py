"""The spec's synchronous API and presigned uploads, on both object stores."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from jobs.registry import OPERATIONS, example_body
from tests import images
from tests.fleet_harness import Fleet
from tests.fleet_helpers import upload_examples


def _spec_shape(name: str) -> dict:
    """A registry example in the image-tools spec's field names (`file`, crop's left/top)."""
    body = example_body(OPERATIONS[name])
    del body["operation"]
    if "input" in body:
        body["file"] = {"inputKey": body.pop("input")}
    if "rect" in body:
        rect = body.pop("rect")
        body.update(left=rect["x"], top=rect["y"], width=rect["width"], height=rect["height"])
    return body


@pytest.mark.parametrize("name", [n for n in OPERATIONS if n != "crop"] + ["crop"])
def test_every_operation_through_the_synchronous_api(dir_fleet: Fleet, name: str) -> None:
    body = _spec_shape(name)
    if name == "crop":  # the photo is 960x720 upright: the spec example's rect fits
        body.update(left=100, top=50, width=800, height=600)
    with dir_fleet.client() as client:
        upload_examples(client)
        response = client.post(f"/v1/image/{name}", json=body)
    assert response.status_code == 200, response.text
    envelope = response.json()
    if "inline" in envelope:
        image = Image.open(io.BytesIO(base64.b64decode(envelope["inline"])))
        assert image.size == (envelope["width"], envelope["height"])
        assert envelope["bytes"] == len(base64.b64decode(envelope["inline"]))
    else:
        assert {"metadata", "dominant", "text", "blurhash", "variants"} & set(envelope), envelope


def test_crop_left_top_and_job_errors_as_422(dir_fleet: Fleet) -> None:
    pixels = images.photo_like(120, 80, seed=3)
    inline = base64.b64encode(images.encode(pixels)).decode()
    with dir_fleet.client() as client:
        ok = client.post(
            "/v1/image/crop",
            json={"file": {"inline": inline}, "left": 10, "top": 20, "width": 30, "height": 40},
        )
        bad = client.post(
            "/v1/image/crop",
            json={"file": {"inline": inline}, "left": 100, "top": 0, "width": 30, "height": 40},
        )
        unknown = client.post("/v1/image/sepia", json={})
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(ok.json()["inline"]))))
    assert np.array_equal(out, pixels[20:60, 10:40])
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "CROP_OUT_OF_BOUNDS"
    assert unknown.status_code == 404


def test_large_outputs_come_as_a_signed_url(fleet: Fleet) -> None:
    noise = np.random.default_rng(5).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    with fleet.client() as client:
        client.put("/v1/objects/noise.png", content=images.encode(noise)).raise_for_status()
        response = client.post(
            "/v1/image/convert", json={"file": {"inputKey": "noise.png"}, "format": "png"}
        )
    envelope = response.json()
    assert response.status_code == 200 and "inline" not in envelope, envelope
    assert envelope["bytes"] > 4 * 1024 * 1024 and envelope["expiresAt"]
    fetched = httpx.get(envelope["outputUrl"], timeout=30)  # no API key: the URL is the key
    assert fetched.status_code == 200 and len(fetched.content) == envelope["bytes"]
    assert fetched.headers["content-type"] == "image/png"  # the output's, on either store
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fetched.content))), noise)
    tampered = envelope["outputUrl"].replace("noise", "noisy").replace("output", "outpot")
    assert httpx.get(tampered[:-3] + "AAA", timeout=30).status_code in (403, 404)


def test_presigned_upload_then_job(fleet: Fleet) -> None:
    pixels = images.photo_like(64, 48, seed=6)
    with fleet.client() as client:
        upload = client.post("/v1/uploads").json()
        assert upload["inputKey"].startswith("uploads/") and upload["expiresAt"]
        put = httpx.put(upload["uploadUrl"], content=images.encode(pixels), timeout=30)
        assert put.status_code in (200, 201), put.text
        job = client.post(
            "/v1/jobs?wait=30",
            json={
                "operation": "crop",
                "input": {"inputKey": upload["inputKey"]},
                "rect": {"x": 0, "y": 0, "width": 16, "height": 16},
            },
        ).json()
        assert job["status"] == "succeeded", job
        out = client.get(f"/v1/objects/{job['result']['output']}").content
    assert np.array_equal(images.decode(out), pixels[:16, :16])
    forged = httpx.put(upload["uploadUrl"][:-4] + "AAAA", content=b"x", timeout=30)
    assert forged.status_code in (403, 404)
