"""A hostile tenant's attacks on admission and billing, reproduced from the outside against
a real fleet: page and frame bombs, headers laid out to dodge the quote, inputs replaced
after the quote, tiny inputs asking for huge rasters, and cancel as a way to get work free.

The inputs come from tests/hostile_inputs.py (shared with tests/hostile_report.py); expected
prices are computed from the pixels the test put in.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from datetime import datetime

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import images
from tests.fleet_harness import Fleet, start_fleet, wait_for_job
from tests.hostile_inputs import (
    CONTACT_SHEET,
    EXTEND_TO_10000,
    PER_MP,
    SLOW,
    TINY,
    app9_jpeg,
    black_png,
    gif_big_frame1,
    grayscale,
    junk_jpeg,
    on_tiny,
    put,
    resize_fill,
    slow_jpeg,
    tiff_1x1_then,
    tiff_big_page1,
    upscale_pipeline,
)
from tests.hostile_measure import memory_kb, pool_pids, wait_running

pytestmark = pytest.mark.fleet  # starts its own servers

MAX_MP = 40  # this fleet's FLEET_MAX_MEGAPIXELS; the work limit is 4x that


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One cpu process, so a slow job keeps the pool busy while the test acts."""
    started = start_fleet(
        tmp_path_factory.mktemp("hostile") / "var",
        {"FLEET_MAX_MEGAPIXELS": str(MAX_MP), "FLEET_CPU_CONCURRENCY": "1"},
    )
    with started.client() as client:
        put(client, "slow.jpg", slow_jpeg())  # SLOW takes ~seconds a step on one process
    yield started
    started.stop()


def _refused(response: httpx.Response, needle: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "IMAGE_TOO_LARGE" and needle in error["message"], error


def _tiff_with_big_second_page() -> bytes:
    return tiff_big_page1(7000)  # 49 MP


def _gif_with_big_second_frame() -> bytes:
    return gif_big_frame1(7000)  # 49 MP, a few bytes


@pytest.mark.parametrize(
    ("name", "build"),
    [("pages.tif", _tiff_with_big_second_page), ("frames.gif", _gif_with_big_second_frame)],
)
def test_a_big_later_page_or_frame_is_refused_at_submission(
    fleet: Fleet, name: str, build: object
) -> None:
    data = build()  # type: ignore[operator]
    assert len(data) < 250_000
    with fleet.client() as client:
        put(client, name, data)
        for extra in ({"page": 1}, {"animated": True}):
            _refused(client.post("/v1/jobs", json=grayscale(name, **extra)), "7000x7000")
        first = client.post("/v1/jobs?wait=60", json=grayscale(name))
    job = first.json()  # page 0 is 8x8: it runs, at the 1 MP minimum
    assert job["status"] in ("succeeded", "failed"), job
    assert job["billing"]["quoted_micros"] == PER_MP


def _layouts() -> dict[str, tuple[bytes, dict]]:
    photo = images.photo_like(3000, 2000, seed=7)
    return {
        "app9.jpg": (app9_jpeg(photo), {}),
        "junk.jpg": (junk_jpeg(photo), {}),  # grey, one junk byte after APP0
        "page1.tif": (tiff_1x1_then(photo), {"page": 1}),
    }


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_the_quote_reads_the_layout_the_decoder_reads(fleet: Fleet, name: str) -> None:
    data, extra = _layouts()[name]
    with fleet.client() as client:
        put(client, name, data)
        job = client.post("/v1/jobs?wait=60", json=grayscale(name, **extra)).json()
    price = 3000 * 2000 // 1_000_000 * PER_MP  # 6 MP decoded, and billed
    assert job["status"] == "succeeded", job
    assert job["billing"]["quoted_micros"] == price and job["billing"]["charged_micros"] == price
    assert (job["result"]["width"], job["result"]["height"]) == (3000, 2000)


def test_an_input_replaced_after_the_quote_fails_input_changed(fleet: Fleet) -> None:
    with fleet.client() as client:
        put(client, "victim.png", black_png())
        slow = client.post("/v1/jobs", json=SLOW).json()["id"]
        wait_running(client, slow)  # the only cpu process is busy
        victim = client.post("/v1/jobs", json=grayscale("victim.png")).json()
        assert victim["billing"]["quoted_micros"] == PER_MP  # 8x8: the 1 MP minimum
        put(client, "victim.png", images.encode(images.photo_like(3000, 2000), "JPEG"))
        client.delete(f"/v1/jobs/{slow}").raise_for_status()
        job = wait_for_job(client, victim["id"], timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "INPUT_CHANGED", job
    assert job["billing"]["charged_micros"] == 0 and job["result"] is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (resize_fill(10000), "10000x10000"),
        (EXTEND_TO_10000, "10000x10000"),
        ({"operation": "resize", "width": 9000}, "9000x9000"),
        (upscale_pipeline(6000, 9, 1.1), "MP of images in all"),
    ],
    ids=["resize", "extend", "resize-one-side", "ten-step-pipeline"],
)
def test_tiny_inputs_cannot_ask_for_huge_rasters(fleet: Fleet, body: dict, needle: str) -> None:
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json=on_tiny(body)), needle)


def test_cover_cannot_scale_a_sliver_into_a_huge_image_before_cutting(fleet: Fleet) -> None:
    sliver = base64.b64encode(images.encode(np.zeros((400, 1, 3), np.uint8))).decode()
    body = {
        "operation": "resize",
        "input": {"inline": sliver},
        "width": 1000,
        "height": 1000,
        "fit": "cover",
    }  # scaled to 1000x400000 before the window
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json=body), "scaled image would be 1000x400000")


def test_a_contact_sheet_of_a_hundred_big_cells_is_refused(fleet: Fleet) -> None:
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json=CONTACT_SHEET), "the contact sheet")


def _pool_peak_rss(fleet: Fleet, pool: str) -> int:
    """The largest peak RSS (bytes) of the pool's worker processes (VmHWM)."""
    peaks = [memory_kb(pid)["VmHWM"] * 1024 for pid in pool_pids(fleet, pool)]
    assert peaks, "no worker process found"
    return max(peaks)


def test_big_allowed_work_is_billed_for_what_it_creates_within_its_memory_budget(
    fleet: Fleet,
) -> None:
    from worker.budget import BYTES_PER_PIXEL, FIXED_BYTES

    body = {
        "operation": "pipeline",
        "input": TINY,
        "format": "png",
        "steps": [resize_fill(6000), {"operation": "adjust", "brightness": 1.2, "saturation": 0.5}],
    }
    with fleet.client() as client:
        response = client.post("/v1/jobs?wait=60", json=body)
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["status"] == "succeeded", job
        out = Image.open(io.BytesIO(client.get(f"/v1/objects/{job['result']['output']}").content))
    assert out.size == (6000, 6000)
    price = 2 * 36 * PER_MP  # two steps, each creating 36 MP
    assert job["billing"]["quoted_micros"] == price and job["billing"]["charged_micros"] == price
    baseline = 400 << 20  # a cpu worker process with its libraries, before any job
    largest = 6000 * 6000  # the job's largest raster
    budget = baseline + FIXED_BYTES + BYTES_PER_PIXEL["pipeline"] * largest
    peak = _pool_peak_rss(fleet, "cpu")
    print(f"cpu pool peak RSS {peak / 2**20:.0f} MiB; budget {budget / 2**20:.0f} MiB")
    assert peak <= budget


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def test_cancel_stops_the_work_and_leaves_no_output(fleet: Fleet) -> None:
    with fleet.client() as client:
        job_id = client.post("/v1/jobs", json={**SLOW, "output": "slow-out.png"}).json()["id"]
        wait_running(client, job_id)
        canceled = client.delete(f"/v1/jobs/{job_id}").json()
        assert canceled["status"] == "canceled"
        # The worker stops at its next step: the pool is free for the next job soon after.
        after = client.post("/v1/jobs?wait=60", json=grayscale(TINY)).json()
        assert after["status"] == "succeeded", after
        final = client.get(f"/v1/jobs/{job_id}").json()
        missing = client.get("/v1/objects/slow-out.png")
    # Charged the work it ran (docs/billing.md#endings): a moment of a 60 s limit is less
    # than the 1 MP price, which is the floor.
    ran = (_at(final["finished_at"]) - _at(final["started_at"])).total_seconds()
    share = math.ceil(final["billing"]["quoted_micros"] * min(1.0, ran / 60))
    assert final["status"] == "canceled" and final["billing"]["state"] == "captured"
    assert final["billing"]["charged_micros"] == max(share, PER_MP)
    assert final["result"] is None
    assert missing.status_code == 404
    assert "canceled while running" in fleet.log_file.read_text()
