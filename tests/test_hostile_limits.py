"""Issue 25's smaller attacks, reproduced: a `page` far into a GIF (a minute's seek that
ended IMAGE_PARSE_FAILED), a time limit striking inside a decode, flat-priced reads of
large images, a GIF header of millions of one-byte sub-blocks, and uploaded HTML/SVG served
as active documents. Each ends refused with a documented code, or done and billed by the
rule docs/billing.md states."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import httpx
import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from billing import ranged
from billing.header import header_of_bytes, read_header
from imagefleet.settings import load_settings
from jobs.errors import ErrorCode, FleetError
from jobs.registry import decode_spec
from jobs.spec import JobSpec
from tests import images
from tests.fleet_harness import Fleet, start_fleet, wait_for_job
from tests.limits_inputs import flat_png, many_frames_gif, sub_block_gif
from worker import codec

OVER_CEILING_PER_MP = 100  # docs/billing.md: each megapixel past the ceiling
CEILING = 16.0  # FLEET_FLAT_PRICE_MAX_MEGAPIXELS's default


def _spec(body: dict) -> JobSpec:
    return decode_spec(json.dumps(body).encode())


@pytest.mark.parametrize("operation", ["grayscale", "metadata", "dominant-color", "placeholder"])
def test_a_page_at_or_past_the_frame_limit_is_refused_naming_the_field(operation: str) -> None:
    cfg = load_settings({"FLEET_MAX_FRAMES": "1000"})
    with pytest.raises(FleetError) as refused:
        _spec({"operation": operation, "input": "a.gif", "page": 300_000}).admit(cfg)
    assert refused.value.code is ErrorCode.VALIDATION_ERROR
    assert (
        "`$.page`" in refused.value.message and "FLEET_MAX_FRAMES is 1000" in refused.value.message
    )
    with pytest.raises(FleetError):
        _spec({"operation": operation, "input": "a.gif", "page": 1000}).admit(cfg)
    _spec({"operation": operation, "input": "a.gif", "page": 999}).admit(cfg)  # the last one


def test_a_gif_page_is_planned_as_every_frame_its_seek_decodes() -> None:
    header = header_of_bytes(many_frames_gif(50, 200, 100), count_frames=True)
    assert header is not None and header.frames == 50
    spec = _spec({"operation": "grayscale", "input": "a.gif", "page": 9})
    raster = spec.input_raster(0, header)
    assert (raster.width, raster.height, raster.frames) == (200, 100, 10)


@contextmanager
def soft_limit_after(seconds: float) -> Iterator[None]:
    """Celery's soft time limit as billiard delivers it: a signal whose handler raises
    SoftTimeLimitExceeded in the middle of whatever the job is doing."""

    def fire(signum: int, frame: FrameType | None) -> None:
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_time_limit_inside_a_gif_seek_is_a_time_limit_not_a_parse_error() -> None:
    # Page 999 of 1000 1x1 frames on a 16 MP canvas: Pillow decodes every frame before it,
    # ~10 s here; the limit strikes after 0.5 s. It used to come out IMAGE_PARSE_FAILED.
    data = many_frames_gif(1000, 4000, 4000)
    with pytest.raises(SoftTimeLimitExceeded), soft_limit_after(0.5):
        codec.decode(data, codec.Limits(), page=999)


def test_a_time_limit_while_pillow_opens_a_gif_is_a_time_limit_not_a_parse_error() -> None:
    # Pillow's open walks 20M one-byte sub-blocks (~5 s here) before the first frame.
    data = sub_block_gif(20_000_000)
    with pytest.raises(SoftTimeLimitExceeded), soft_limit_after(0.3):
        codec.decode(data, codec.Limits())
    with pytest.raises(SoftTimeLimitExceeded), soft_limit_after(0.3):
        codec.probe(data)


@pytest.fixture(scope="module")
def impatient_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A 1 s soft limit, and room for a 16 MP canvas seeked through 1000 frames."""
    fleet = start_fleet(
        tmp_path_factory.mktemp("impatient-limits") / "var",
        {
            "FLEET_SOFT_TIME_LIMIT": "1",
            "FLEET_HARD_TIME_LIMIT": "30",
            "FLEET_MAX_MEGAPIXELS": "20000",
        },
    )
    yield fleet
    fleet.stop()


@pytest.mark.fleet
def test_a_seek_past_the_soft_limit_ends_timeout_through_the_fleet(impatient_fleet: Fleet) -> None:
    with impatient_fleet.client() as client:
        put = client.put("/v1/objects/seek.gif", content=many_frames_gif(1000, 4000, 4000))
        put.raise_for_status()
        job = _run(client, {"operation": "grayscale", "input": "seek.gif", "page": 999})
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "TIMEOUT", job["error"]  # was IMAGE_PARSE_FAILED


class CountingStore:
    """Ranged reads of an object in memory, as the gateway makes them of a stored one."""

    def __init__(self, data: bytes) -> None:
        self.view, self.fetched, self.reads = memoryview(data), 0, 0

    def __call__(self, offset: int, length: int) -> memoryview:
        self.reads += 1
        self.fetched += min(length, max(0, len(self.view) - offset))
        return self.view[offset : offset + length]


def test_a_header_walk_of_millions_of_sub_blocks_is_refused_after_its_step_budget() -> None:
    data = sub_block_gif(26_000_000)  # the 52 MB GIF: 8.4 s of the gateway's CPU
    store = CountingStore(data)
    with pytest.raises(FleetError) as refused:
        read_header(store, len(data), count_frames=True)
    assert refused.value.code is ErrorCode.IMAGE_PARSE_FAILED
    # Stopped by steps: one sub-block is one read of the chain, two bytes each.
    assert store.fetched <= 2 * ranged.MAX_STEPS + 2 * ranged.AHEAD + (1 << 16), store.fetched
    assert store.fetched < len(data) / 10
    # Under the budget the same walk completes and finds the frame past the comment.
    small = sub_block_gif(ranged.MAX_STEPS // 2)
    header = read_header(CountingStore(small), len(small), count_frames=True)
    assert header is not None and (header.format, header.frames) == ("gif", 1)


def test_an_honest_long_animation_is_well_inside_the_step_budget() -> None:
    data = many_frames_gif(1000, 64, 64)  # FLEET_MAX_FRAMES frames, a few reads each
    header = read_header(CountingStore(data), len(data), count_frames=True)
    assert header is not None and header.frames == 1000


@pytest.mark.parametrize("operation", ["dominant-color", "placeholder"])
def test_a_flat_read_of_a_jpeg_meters_the_size_the_codec_decodes(operation: str) -> None:
    data = images.encode(images.photo_like(3000, 2000, seed=25), "JPEG", quality=80)
    header = header_of_bytes(data)
    assert header is not None
    spec = _spec({"operation": operation, "input": "a.jpg"})
    metered = spec.metered_raster(0, header)
    decoded = codec.decode(data, codec.Limits(), scale_for=spec.decode_scale).first  # type: ignore[attr-defined]
    assert (metered.width, metered.height) == (decoded.shape[1], decoded.shape[0])
    assert metered.width < 3000 // 4  # shrunk on load, not decoded whole
    assert spec.input_raster(0, header).pixels == 3000 * 2000  # the limits see it whole


def _run(client: httpx.Client, body: dict) -> dict:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"], timeout=120)


def _over(megapixels: float, flat: int) -> int:
    return flat + math.ceil(OVER_CEILING_PER_MP * max(0.0, megapixels - CEILING))


def test_flat_reads_of_a_large_png_are_billed_per_megapixel_over_the_ceiling(
    dir_fleet: Fleet,
) -> None:
    big, small = flat_png(6000, 6000, grey=77), flat_png(2000, 1500, grey=77)  # 36 MP, 3 MP
    with dir_fleet.client() as client:
        client.put("/v1/objects/limits/big.png", content=big).raise_for_status()
        client.put("/v1/objects/limits/small.png", content=small).raise_for_status()
        prices = {
            op["name"]: op["price"] for op in client.get("/v1/operations").json()["operations"]
        }
        for name, flat in (("dominant-color", 200), ("placeholder", 200)):
            assert prices[name] == {
                "kind": "flat",
                "flat_micros": flat,
                "flat_up_to_megapixels": CEILING,
                "over_per_mp_micros": OVER_CEILING_PER_MP,
            }
            job = _run(client, {"operation": name, "input": "limits/big.png"})
            assert job["status"] == "succeeded", job
            assert job["billing"]["megapixels"] == 36.0
            assert job["billing"]["quoted_micros"] == job["billing"]["charged_micros"]
            assert job["billing"]["charged_micros"] == _over(36.0, flat) == 2200
            cheap = _run(client, {"operation": name, "input": "limits/small.png"})
            assert cheap["status"] == "succeeded" and cheap["billing"]["charged_micros"] == flat
        # A JPEG of the same size decodes at 1/8 (750x750): inside the ceiling, flat.
        photo = images.encode(images.photo_like(6000, 6000, seed=7), "JPEG", quality=80)
        client.put("/v1/objects/limits/big.jpg", content=photo).raise_for_status()
        for name in ("dominant-color", "placeholder"):
            job = _run(client, {"operation": name, "input": "limits/big.jpg"})
            assert job["status"] == "succeeded", job
            assert job["billing"]["megapixels"] == 1.0  # 0.56 MP decoded: the 1 MP minimum
            assert job["billing"]["charged_micros"] == 200
        colour = _run(client, {"operation": "dominant-color", "input": "limits/big.png"})
        assert colour["result"]["dominant"] == {"r": 77, "g": 77, "b": 77}
        # metadata reads the header only: flat at any size, nothing metered.
        facts = _run(client, {"operation": "metadata", "input": "limits/big.png"})
        assert facts["status"] == "succeeded", facts
        assert facts["billing"]["megapixels"] is None and facts["billing"]["charged_micros"] == 500
        assert facts["result"]["metadata"]["width"] == 6000


def test_metadata_of_every_frame_is_metered_like_a_decode(dir_fleet: Fleet) -> None:
    data = many_frames_gif(30, 1000, 1000)  # 30 frames on a 1 MP canvas: 30 MP decoded
    with dir_fleet.client() as client:
        client.put("/v1/objects/limits/frames.gif", content=data).raise_for_status()
        job = _run(
            client, {"operation": "metadata", "input": "limits/frames.gif", "animated": True}
        )
    assert job["status"] == "succeeded", job
    assert job["result"]["metadata"]["frames"] == 30
    assert job["billing"]["megapixels"] == 30.0
    assert job["billing"]["charged_micros"] == _over(30.0, 500) == 1900


def test_a_page_past_the_frame_limit_is_refused_at_submission(dir_fleet: Fleet) -> None:
    data = many_frames_gif(2000)  # more frames than FLEET_MAX_FRAMES: the seek is the bomb
    with dir_fleet.client() as client:
        client.put("/v1/objects/limits/seek.gif", content=data).raise_for_status()
        before = client.get("/v1/usage").json()["held_micros"]
        response = client.post(
            "/v1/jobs", json={"operation": "grayscale", "input": "limits/seek.gif", "page": 1999}
        )
        error = response.json()["error"]
        assert response.status_code == 400 and error["code"] == "VALIDATION_ERROR", error
        assert "`$.page`" in error["message"] and "FLEET_MAX_FRAMES is 1000" in error["message"]
        assert client.get("/v1/usage").json()["held_micros"] == before
        # The last page allowed runs, billed as the frames its seek decodes (1000 x 1 px).
        job = _run(client, {"operation": "grayscale", "input": "limits/seek.gif", "page": 999})
    assert job["status"] == "succeeded", job
    assert job["billing"]["megapixels"] == 1.0  # the 1 MP minimum: 1000 frames of 1 px


def test_a_gif_of_millions_of_sub_blocks_is_refused_at_submission(dir_fleet: Fleet) -> None:
    data = sub_block_gif(20_000_000)  # 40 MB, under the object limit
    with dir_fleet.client() as client:
        client.put("/v1/objects/limits/blocks.gif", content=data).raise_for_status()
        response = client.post(
            "/v1/jobs", json={"operation": "metadata", "input": "limits/blocks.gif"}
        )
    error = response.json()["error"]
    assert response.status_code == 422 and error["code"] == "IMAGE_PARSE_FAILED", error
    assert "reads to walk" in error["message"]


def _served_safely(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_objects_are_served_with_nosniff_a_closed_csp_and_documents_as_attachments(
    dir_fleet: Fleet,
) -> None:
    page = b"<html><script>fetch('/v1/usage')</script></html>"
    drawing = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    picture = images.encode(np.zeros((4, 4, 3), np.uint8))
    with dir_fleet.client() as client:
        for key, data in (("x.html", page), ("x.svg", drawing), ("x.png", picture)):
            client.put(f"/v1/objects/limits/{key}", content=data).raise_for_status()
        html = client.get("/v1/objects/limits/x.html")
        svg = client.get("/v1/objects/limits/x.svg")
        png = client.get("/v1/objects/limits/x.png")
    for response, kind in ((html, "text/html"), (svg, "image/svg+xml")):
        _served_safely(response)
        assert response.headers["content-type"].startswith(kind)  # its type, not rewritten
        assert response.headers["content-disposition"] == "attachment"
    _served_safely(png)
    assert png.content == picture and "content-disposition" not in png.headers


def test_signed_download_links_carry_the_same_headers(dir_fleet: Fleet) -> None:
    noise = np.random.default_rng(25).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    with dir_fleet.client() as client:
        client.put("/v1/objects/limits/noise.png", content=images.encode(noise)).raise_for_status()
        envelope = client.post(
            "/v1/image/convert", json={"file": {"inputKey": "limits/noise.png"}, "format": "png"}
        ).json()
    assert "outputUrl" in envelope and "/v1/signed/" in envelope["outputUrl"], envelope
    fetched = httpx.get(envelope["outputUrl"], timeout=30)
    _served_safely(fetched)
    assert len(fetched.content) == envelope["bytes"]
