"""A hostile tenant's attacks on admission and billing, reproduced from the outside against
a real fleet: page and frame bombs, headers laid out to dodge the quote, inputs replaced
after the quote, tiny inputs asking for huge rasters, and cancel as a way to get work free.

Every input is built here; expected prices are computed from the pixels the test put in.
"""

from __future__ import annotations

import base64
import io
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import images
from tests.fleet_harness import Fleet, descendants, process_table, start_fleet, wait_for_job

MAX_MP = 40  # this fleet's FLEET_MAX_MEGAPIXELS; the work limit is 4x that
PER_MP = 300  # the default price of per-megapixel operations, in micro-dollars
TINY = {"inline": base64.b64encode(images.encode(np.full((2, 2, 3), 90, np.uint8))).decode()}
SLOW = {"operation": "pipeline", "input": "slow.jpg",  # ~seconds per step on one process
        "steps": [{"operation": "blur", "sigma": 60}] * 10}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One cpu process, so a slow job keeps the pool busy while the test acts."""
    started = start_fleet(tmp_path_factory.mktemp("hostile") / "var",
                          {"FLEET_MAX_MEGAPIXELS": str(MAX_MP), "FLEET_CPU_CONCURRENCY": "1"})
    with started.client() as client:
        client.put("/v1/objects/slow.jpg", content=images.encode(
            images.photo_like(3000, 2000, seed=4), "JPEG")).raise_for_status()
    yield started
    started.stop()


def _put(client: httpx.Client, key: str, data: bytes) -> None:
    client.put(f"/v1/objects/{key}", content=data).raise_for_status()


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _refused(response: httpx.Response, needle: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "IMAGE_TOO_LARGE" and needle in error["message"], error


def _tiff_with_big_second_page() -> bytes:
    small, big = Image.new("1", (8, 8), 1), Image.new("1", (7000, 7000), 1)  # 49 MP
    return _save(small, "TIFF", save_all=True, append_images=[big], compression="group4")


def _gif_with_big_second_frame() -> bytes:
    noise = np.random.default_rng(3).integers(0, 255, (2, 8, 8, 3), np.uint8)
    frames = [Image.fromarray(frame) for frame in noise]  # every pixel changes: full frames
    data = bytearray(_save(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    last = data.rindex(b"\x2c\x00\x00\x00\x00\x08\x00\x08\x00")  # frame 1's descriptor
    struct.pack_into("<HH", data, last + 5, 7000, 7000)  # 7000x7000: 49 MP, a few bytes
    return bytes(data)


@pytest.mark.parametrize(("name", "build"), [("pages.tif", _tiff_with_big_second_page),
                                             ("frames.gif", _gif_with_big_second_frame)])
def test_a_big_later_page_or_frame_is_refused_at_submission(fleet: Fleet, name: str,
                                                           build: object) -> None:
    data = build()  # type: ignore[operator]
    assert len(data) < 250_000
    with fleet.client() as client:
        _put(client, name, data)
        for extra in ({"page": 1}, {"animated": True}):
            _refused(client.post("/v1/jobs", json={"operation": "grayscale", "input": name,
                                                   **extra}), "7000x7000")
        first = client.post("/v1/jobs?wait=60", json={"operation": "grayscale", "input": name})
    job = first.json()  # page 0 is 8x8: it runs, at the 1 MP minimum
    assert job["status"] in ("succeeded", "failed"), job
    assert job["billing"]["quoted_micros"] == PER_MP


def _jpeg(pixels: np.ndarray, insert: bytes) -> bytes:
    """A real JPEG with `insert` placed right after its APP0 segment."""
    data = _save(Image.fromarray(pixels), "JPEG", quality=80)
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:app0_end] + insert + data[app0_end:]


def _layouts() -> dict[str, tuple[bytes, dict]]:
    photo = images.photo_like(3000, 2000, seed=7)
    grey = photo[:, :, 1].copy()
    app9 = b"".join(b"\xff\xe9\xff\xfe" + bytes(0xFFFC) for _ in range(260))  # 17 MB of APP9
    pages = [Image.new("RGB", (1, 1)), Image.fromarray(photo)]
    return {
        "app9.jpg": (_jpeg(photo, app9), {}),
        "junk.jpg": (_jpeg(grey, b"\x00"), {}),  # one junk byte after APP0: decoders skip it
        "page1.tif": (_save(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
                      {"page": 1}),
    }


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_the_quote_reads_the_layout_the_decoder_reads(fleet: Fleet, name: str) -> None:
    data, extra = _layouts()[name]
    with fleet.client() as client:
        _put(client, name, data)
        job = client.post("/v1/jobs?wait=60", json={"operation": "grayscale", "input": name,
                                                    **extra}).json()
    price = 3000 * 2000 // 1_000_000 * PER_MP  # 6 MP decoded, and billed
    assert job["status"] == "succeeded", job
    assert job["billing"]["quoted_micros"] == price and job["billing"]["charged_micros"] == price
    assert (job["result"]["width"], job["result"]["height"]) == (3000, 2000)


def _wait_running(client: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_an_input_replaced_after_the_quote_fails_input_changed(fleet: Fleet) -> None:
    with fleet.client() as client:
        _put(client, "victim.png", images.encode(np.zeros((8, 8, 3), np.uint8)))
        slow = client.post("/v1/jobs", json=SLOW).json()["id"]
        _wait_running(client, slow)  # the only cpu process is busy
        victim = client.post("/v1/jobs", json={"operation": "grayscale",
                                                "input": "victim.png"}).json()
        assert victim["billing"]["quoted_micros"] == PER_MP  # 8x8: the 1 MP minimum
        _put(client, "victim.png", images.encode(images.photo_like(3000, 2000), "JPEG"))
        client.delete(f"/v1/jobs/{slow}").raise_for_status()
        job = wait_for_job(client, victim["id"], timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "INPUT_CHANGED", job
    assert job["billing"]["charged_micros"] == 0 and job["result"] is None


@pytest.mark.parametrize(("body", "needle"), [
    ({"operation": "resize", "width": 10000, "height": 10000, "fit": "fill"}, "10000x10000"),
    ({"operation": "extend", "right": 9998, "bottom": 9998}, "10000x10000"),
    ({"operation": "resize", "width": 9000}, "9000x9000"),
    ({"operation": "pipeline", "steps": [{"operation": "resize", "width": 6000,
                                          "height": 6000, "fit": "fill"}]
      + [{"operation": "adjust", "brightness": 1.1}] * 9}, "MP of images in all"),
], ids=["resize", "extend", "resize-one-side", "ten-step-pipeline"])
def test_tiny_inputs_cannot_ask_for_huge_rasters(fleet: Fleet, body: dict, needle: str) -> None:
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json={**body, "input": TINY}), needle)


def test_cover_cannot_scale_a_sliver_into_a_huge_image_before_cutting(fleet: Fleet) -> None:
    sliver = base64.b64encode(images.encode(np.zeros((400, 1, 3), np.uint8))).decode()
    body = {"operation": "resize", "input": {"inline": sliver}, "width": 1000,
            "height": 1000, "fit": "cover"}  # scaled to 1000x400000 before the window
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json=body), "scaled image would be 1000x400000")


def test_a_contact_sheet_of_a_hundred_big_cells_is_refused(fleet: Fleet) -> None:
    body = {"operation": "contact-sheet", "files": [TINY] * 100, "cellWidth": 990,
            "cellHeight": 990}
    with fleet.client() as client:
        _refused(client.post("/v1/jobs", json=body), "the contact sheet")


def _pool_peak_rss(fleet: Fleet, pool: str) -> int:
    """The largest peak RSS (bytes) of the pool's worker processes (VmHWM)."""
    table = process_table()
    peaks = []
    for pid in descendants(fleet.child.pid, table):
        if f"--pool {pool}" in table[pid][1]:  # the pool's main process and its children
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(int(status.split("VmHWM:")[1].split()[0]) * 1024)
    assert peaks, "no worker process found"
    return max(peaks)


def test_big_allowed_work_is_billed_for_what_it_creates_within_its_memory_budget(
        fleet: Fleet) -> None:
    from worker.budget import BYTES_PER_PIXEL, FIXED_BYTES

    body = {"operation": "pipeline", "input": TINY, "format": "png",
            "steps": [{"operation": "resize", "width": 6000, "height": 6000, "fit": "fill"},
                      {"operation": "adjust", "brightness": 1.2, "saturation": 0.5}]}
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


def test_cancel_stops_the_work_and_leaves_no_output(fleet: Fleet) -> None:
    with fleet.client() as client:
        job_id = client.post("/v1/jobs", json={**SLOW, "output": "slow-out.png"}).json()["id"]
        _wait_running(client, job_id)
        canceled = client.delete(f"/v1/jobs/{job_id}").json()
        assert canceled["status"] == "canceled"
        # The worker stops at its next step: the pool is free for the next job soon after.
        after = client.post("/v1/jobs?wait=60", json={"operation": "grayscale",
                                                      "input": TINY}).json()
        assert after["status"] == "succeeded", after
        final = client.get(f"/v1/jobs/{job_id}").json()
        missing = client.get("/v1/objects/slow-out.png")
    assert final["status"] == "canceled" and final["billing"]["charged_micros"] == 0
    assert final["result"] is None
    assert missing.status_code == 404
    assert "canceled while running" in fleet.log_file.read_text()
