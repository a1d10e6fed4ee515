"""The new input formats through a real fleet (POST /v1/jobs and the synchronous API): each
converts to PNG, resizes and reports metadata; SVG and PDF are drawn at the job's density;
JPEG XL is an output; a hostile SVG fetches nothing from the worker either.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fleet_harness import Fleet
from tests.images import photo_like
from tests.test_vector_security import LEAK, Listener, _png
from worker.formats import ensure_plugins

pytestmark = pytest.mark.fleet


def _save(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    ensure_plugins()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


PIXELS = photo_like(120, 90, seed=4)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90">'
    b'<rect width="60" height="90" fill="#ff0000"/><rect x="60" width="60" height="90"'
    b' fill="#0000ff"/></svg>'
)
INPUTS: dict[str, tuple[bytes, str]] = {  # name -> (bytes, the format metadata reports)
    "in.heic": (_save(PIXELS, "HEIF", quality=90), "heif"),
    "in.jxl": (_save(PIXELS, "JXL", quality=90), "jxl"),
    "in.jp2": (_save(PIXELS, "JPEG2000"), "jp2"),
    "in.svg": (SVG, "svg"),
    "in.pdf": (_save(PIXELS, "PDF", resolution=72.0), "pdf"),
}


def _run(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs?wait=60", json=body)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    return job["result"]


def _image(client: httpx.Client, key: str) -> Image.Image:
    ensure_plugins()
    return Image.open(io.BytesIO(client.get(f"/v1/objects/{key}").content))


@pytest.mark.parametrize("name", list(INPUTS))
def test_each_format_converts_resizes_and_reports_metadata(dir_fleet: Fleet, name: str) -> None:
    data, fmt = INPUTS[name]
    with dir_fleet.client() as client:
        client.put(f"/v1/objects/formats/{name}", content=data).raise_for_status()
        key = f"formats/{name}"
        converted = _run(client, {"operation": "convert", "input": key, "format": "png"})
        png = _image(client, converted["output"])
        resized = _run(client, {"operation": "resize", "input": key, "width": 60})
        meta = _run(client, {"operation": "metadata", "input": key})["metadata"]
    assert png.format == "PNG" and png.size == (120, 90)
    pixels = np.asarray(png.convert("RGB")).astype(int)
    if name == "in.svg":
        assert tuple(pixels[45, 30]) == (255, 0, 0) and tuple(pixels[45, 90]) == (0, 0, 255)
    else:
        assert np.abs(pixels - PIXELS).mean() < 8  # lossy codings of the same picture
    assert (resized["width"], resized["height"]) == (60, 45)
    assert resized["format"] == ("jxl" if fmt == "jxl" else "png")  # the source's, else PNG
    assert meta["format"] == fmt and (meta["width"], meta["height"]) == (120, 90)


@pytest.mark.parametrize("name", ["in.svg", "in.pdf"])
def test_vector_inputs_are_drawn_at_the_jobs_density(dir_fleet: Fleet, name: str) -> None:
    with dir_fleet.client() as client:
        client.put(f"/v1/objects/formats/{name}", content=INPUTS[name][0]).raise_for_status()
        result = _run(
            client,
            {"operation": "grayscale", "input": f"formats/{name}", "density": 216},
        )
        job_image = _image(client, result["output"])
    assert (result["width"], result["height"]) == job_image.size == (360, 270)


def test_jxl_output_and_vector_cells_and_overlays(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        for name, (data, _) in INPUTS.items():
            client.put(f"/v1/objects/formats/{name}", content=data).raise_for_status()
        out = _run(
            client,
            {"operation": "resize", "input": "formats/in.heic", "width": 60, "format": "jxl"},
        )
        jxl = _image(client, out["output"])
        assert out["output"].endswith(".jxl") and jxl.format == "JXL" and jxl.size == (60, 45)
        head = client.head(f"/v1/objects/{out['output']}")
        assert head.headers.get("content-type") == "image/jxl"
        composite = _run(
            client,
            {"operation": "composite", "input": "formats/in.pdf", "overlay": "formats/in.svg"},
        )
        sheet = _run(
            client,
            {
                "operation": "contact-sheet",
                "files": [f"formats/{n}" for n in INPUTS],
                "columns": 5,
                "cellWidth": 40,
                "cellHeight": 30,
            },
        )
    assert (composite["width"], composite["height"]) == (120, 90)
    assert sheet["width"] >= 200


def test_synchronous_api_reads_a_pdf_page(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        client.put("/v1/objects/formats/sync.pdf", content=INPUTS["in.pdf"][0]).raise_for_status()
        response = client.post(
            "/v1/image/convert",
            json={"file": {"inputKey": "formats/sync.pdf"}, "format": "png", "density": 144},
        )
    assert response.status_code == 200, response.text
    assert (response.json()["width"], response.json()["height"]) == (240, 180)


def test_a_hostile_svg_job_fetches_nothing(dir_fleet: Fleet, tmp_path: Path) -> None:
    listener = Listener()
    leak = tmp_path / "leak.png"
    leak.write_bytes(_png(LEAK))
    try:
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
            f' width="40" height="30"><style>@import url({listener.url}/a.css);</style>'
            f'<image href="{listener.url}/b.png" width="40" height="30"/>'
            f'<image xlink:href="{leak}" width="40" height="30"/>'
            f'<use href="{listener.url}/c.svg#x"/></svg>'
        ).encode()
        with dir_fleet.client() as client:
            client.put("/v1/objects/formats/hostile.svg", content=svg).raise_for_status()
            result = _run(
                client, {"operation": "convert", "input": "formats/hostile.svg", "format": "png"}
            )
            drawn = np.asarray(_image(client, result["output"]).convert("RGBA"))
        time.sleep(0.3)
        assert listener.connections == []
        assert (drawn[..., 3] == 0).all()  # nothing was drawn: no fetched or read pixel
    finally:
        listener.close()
