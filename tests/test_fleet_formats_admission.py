"""Vector inputs at admission, against a real fleet: an SVG declaring a huge size is refused
before anything is held, a page past a PDF's last is a 400 naming the page count, and a
drawn SVG or PDF page is billed on the pixels it is drawn at (the quote equals the capture,
and the output has those pixels) at several densities.

Expected sizes and prices are worked out here from the sizes the test declares: inches at
the job's dpi, and PER_MP micro-dollars a megapixel (at least one)."""

from __future__ import annotations

import io
import math
import time

import httpx
import pytest
from PIL import Image

from tests.fleet_harness import Fleet
from tests.header_helpers import gradient
from tests.hostile_inputs import PER_MP, put

pytestmark = pytest.mark.fleet

SVG_4x3_IN = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="4in" height="3in" viewBox="0 0 40 30">'
    b'<rect width="40" height="30" fill="#3080c0"/><circle cx="20" cy="15" r="10"/></svg>'
)


def two_page_pdf() -> bytes:
    """Page 0 is 6 x 4 in, page 1 is 2 x 5 in (Pillow writes pixels at 72 dpi as points)."""
    buf = io.BytesIO()
    first, second = gradient("RGB", (432, 288)), gradient("RGB", (144, 360))
    first.save(buf, "PDF", resolution=72.0, save_all=True, append_images=[second])
    return buf.getvalue()


def usage(client: httpx.Client) -> tuple[int, int, int]:
    found = client.get("/v1/usage").json()
    return found["balance_micros"], found["held_micros"], len(found["open_holds"])


def test_a_huge_declared_svg_is_too_large_at_submission_with_nothing_held(
    dir_fleet: Fleet,
) -> None:
    huge = b'<svg xmlns="http://www.w3.org/2000/svg" width="10000000" height="10000000"/>'
    with dir_fleet.client() as client:
        put(client, "huge.svg", huge)
        before = usage(client)
        started = time.perf_counter()
        response = client.post(
            "/v1/jobs", json={"operation": "convert", "input": "huge.svg", "format": "png"}
        )
        elapsed = time.perf_counter() - started
        after = usage(client)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "IMAGE_TOO_LARGE" and "10000000x10000000" in error["message"]
    assert elapsed < 5, elapsed  # from the header: nothing was drawn
    assert after == before  # no hold was opened, nothing charged


def test_a_page_past_the_last_is_a_400_naming_the_page_count(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        put(client, "two-pages.pdf", two_page_pdf())
        before = usage(client)
        body = {"operation": "convert", "input": "two-pages.pdf", "page": 5, "format": "png"}
        response = client.post("/v1/jobs", json=body)
        assert usage(client) == before
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR", error
    assert "page 5" in error["message"] and "2 pages" in error["message"], error
    assert "$.page" in error["message"], error


@pytest.mark.parametrize("density", [72, 150, 300])
@pytest.mark.parametrize(
    ("name", "page", "inches"),
    [("art.svg", 0, (4, 3)), ("two-pages.pdf", 0, (6, 4)), ("two-pages.pdf", 1, (2, 5))],
    ids=["svg", "pdf-page0", "pdf-page1"],
)
def test_the_quote_equals_the_capture_at_the_drawn_pixels(
    dir_fleet: Fleet, name: str, page: int, inches: tuple[int, int], density: int
) -> None:
    width, height = inches[0] * density, inches[1] * density
    price = math.ceil(PER_MP * max(1.0, width * height / 1e6))
    body = {"operation": "convert", "input": name, "format": "png", "density": density}
    if page:
        body["page"] = page
    with dir_fleet.client() as client:
        put(client, name, SVG_4x3_IN if name.endswith(".svg") else two_page_pdf())
        response = client.post("/v1/jobs?wait=60", json=body)
        assert response.status_code in (200, 201, 202), response.text
        job = response.json()
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/objects/{job['result']['output']}")
        output.raise_for_status()
    assert job["billing"]["quoted_micros"] == price, (job["billing"], price)
    assert job["billing"]["charged_micros"] == price, (job["billing"], price)
    with Image.open(io.BytesIO(output.content)) as drawn:
        assert drawn.format == "PNG" and drawn.size == (width, height)
