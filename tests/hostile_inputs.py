"""What the hostile tenant of issue 13 sends, built once for tests/test_hostile_*.py and
tests/hostile_report.py: images whose later page or frame is huge, JPEG and TIFF layouts
that dodge a naive quote, a 2x2 inline input asking for huge rasters, slow pipelines, JSON
nested too deep, big bodies streamed as they are sent, and another tenant's key and its
ordinary traffic (timed) while the hostile one floods.

Sizes are parameters: the tests' fleets allow 40 MP, the report's the 100 MP default.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import httpx
import numpy as np
import redis
from PIL import Image

from billing.accounts import Accounts
from tests import images
from tests.fleet_harness import Fleet
from worker import quality

PER_MP = 300  # the default price of per-megapixel operations, in micro-dollars

# --- request bodies ----------------------------------------------------------------------

TINY = {"inline": base64.b64encode(images.encode(np.full((2, 2, 3), 90, np.uint8))).decode()}
SLOW_STEPS = [{"operation": "blur", "sigma": 60}] * 10
SLOW = {"operation": "pipeline", "input": "slow.jpg", "steps": SLOW_STEPS}  # on slow_jpeg()
SLOWER = {"operation": "pipeline", "input": "slower.jpg", "steps": SLOW_STEPS}  # slower_jpeg()
EXTEND_TO_10000 = {"operation": "extend", "right": 9998, "bottom": 9998}  # of a 2x2 input
CONTACT_SHEET = {
    "operation": "contact-sheet",
    "files": [TINY] * 100,
    "cellWidth": 990,
    "cellHeight": 990,
}  # 10010x10010
DEEP = b"[" * 5000 + b"]" * 5000
DEEP_JOB = b'{"operation":"blur","input":"a.png","sigma":' + DEEP + b"}"
HUGE_VIEWPORT = {"width": 65535, "height": 65535}  # a from-html viewport
TALL_PAGE = '<div style="width:10px;height:200000px"></div>'  # a from-html full page


def grayscale(source: str | dict, **extra: object) -> dict:
    return {"operation": "grayscale", "input": source, **extra}


def on_tiny(body: dict) -> dict:
    return {**body, "input": TINY}


def resize_fill(side: int) -> dict:
    return {"operation": "resize", "width": side, "height": side, "fit": "fill"}


def upscale_pipeline(side: int, adjusts: int, brightness: float) -> dict:
    """Resize to side x side, then `adjusts` adjust steps: each step creates side^2 pixels."""
    return {
        "operation": "pipeline",
        "steps": [resize_fill(side)]
        + [{"operation": "adjust", "brightness": brightness}] * adjusts,
    }


# --- images ------------------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def black_png() -> bytes:
    """An 8x8 black PNG: a 1 MP minimum quote."""
    return images.encode(np.zeros((8, 8, 3), np.uint8))


def small_png() -> bytes:
    """64x64: another tenant's ordinary small job."""
    return images.encode(images.photo_like(64, 64))


def slow_jpeg() -> bytes:
    """3000x2000: SLOW takes ~seconds on one cpu process."""
    return images.encode(images.photo_like(3000, 2000, seed=4), "JPEG")


def slower_jpeg() -> bytes:
    """6000x6000 (36 MP: SLOWER creates 360 MP, under the default 400 MP work limit)."""
    return images.encode(np.tile(images.photo_like(3000, 3000, seed=4), (2, 2, 1)), "JPEG")


@cache
def photo_9000() -> np.ndarray:
    """A 9000x9000 RGB photo-like image (81 MP), tiled from a 3000x3000 one (cheap to make)."""
    return np.tile(images.photo_like(3000, 3000, seed=7), (3, 3, 1))


def tiff_big_page1(side: int) -> bytes:
    """Page 0 is 8x8, page 1 is side x side bilevel, group4: a few KB."""
    small, big = Image.new("1", (8, 8), 1), Image.new("1", (side, side), 1)
    return _save(small, "TIFF", save_all=True, append_images=[big], compression="group4")


def gif_big_frame1(side: int) -> bytes:
    """A 2-frame 8x8 noise GIF whose frame 1 descriptor is patched to side x side."""
    noise = np.random.default_rng(3).integers(0, 255, (2, 8, 8, 3), np.uint8)
    frames = [Image.fromarray(frame) for frame in noise]  # every pixel changes: full frames
    data = bytearray(_save(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    last = data.rindex(b"\x2c\x00\x00\x00\x00\x08\x00\x08\x00")  # frame 1's descriptor
    struct.pack_into("<HH", data, last + 5, side, side)
    return bytes(data)


def jpeg(pixels: np.ndarray, insert: bytes = b"") -> bytes:
    """A real JPEG (quality 80) with `insert` placed right after its APP0 segment."""
    data = _save(Image.fromarray(pixels), "JPEG", quality=80)
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:app0_end] + insert + data[app0_end:]


def app9_jpeg(pixels: np.ndarray) -> bytes:
    """17 MB of APP9 segments (260 of them) before the frame header."""
    return jpeg(pixels, b"".join(b"\xff\xe9\xff\xfe" + bytes(0xFFFC) for _ in range(260)))


def junk_jpeg(pixels: np.ndarray) -> bytes:
    """The grey (green channel) JPEG with one junk byte after APP0: decoders skip it."""
    return jpeg(np.ascontiguousarray(pixels[:, :, 1]), b"\x00")


def tiff_1x1_then(pixels: np.ndarray, compression: str = "raw") -> bytes:
    """A 1x1 page 0, then `pixels` as page 1."""
    pages = [Image.new("RGB", (1, 1)), Image.fromarray(pixels)]
    return _save(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression=compression)


# --- streamed bodies, racing uploads, event streams, tenants -----------------------------

MiB = 1 << 20
BLOCK = os.urandom(MiB)  # repeated: 40 big bodies without 40 copies in this process


def stream(size: int, tag: bytes = b"") -> Iterator[bytes]:
    """`size` bytes (starting with `tag`) made 1 MiB at a time as they are sent."""
    first = tag + BLOCK[len(tag) :]
    sent = 0
    while sent < size:
        chunk = (first if sent == 0 else BLOCK)[: size - sent]
        sent += len(chunk)
        yield chunk


def put(client: httpx.Client, key: str, data: bytes) -> None:
    client.put(f"/v1/objects/{key}", content=data, timeout=120).raise_for_status()


def put_racers(
    url: str,
    count: int,
    size: int,
    timeout: float,
) -> list[httpx.Response | httpx.HTTPError]:
    """`count` PUTs of `size` streamed bytes to one URL, let go together; racer i's body
    starts with b"racer-%02d" % i."""
    start = threading.Barrier(count)

    def one(i: int) -> httpx.Response | httpx.HTTPError:
        start.wait()
        try:
            return httpx.put(
                url,
                content=stream(size, b"racer-%02d" % i),
                headers={"Content-Length": str(size)},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def replies(results: list[httpx.Response | httpx.HTTPError]) -> list[httpx.Response]:
    """The responses of put_racers or open_streams; a transport error fails the test (the
    hostile report counts those instead)."""
    errors = [r for r in results if isinstance(r, httpx.HTTPError)]
    assert not errors, f"{len(errors)} request(s) failed: {errors[:3]}"
    return [r for r in results if isinstance(r, httpx.Response)]


async def open_stream(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """A stream whose headers have arrived; left open until the caller closes it."""
    return await client.send(client.build_request("GET", path), stream=True)


async def open_streams(
    client: httpx.AsyncClient,
    path: str,
    count: int,
) -> list[httpx.Response | httpx.HTTPError]:
    """`count` streams opened at once (see open_stream)."""

    async def one() -> httpx.Response | httpx.HTTPError:
        try:
            return await open_stream(client, path)
        except httpx.HTTPError as exc:
            return exc

    return await asyncio.gather(*(one() for _ in range(count)))


def new_tenant(fleet: Fleet, prefix: str, credit_micros: int) -> str:
    """The API key of a fresh account on `fleet`'s Redis."""
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    return accounts.create(f"{prefix}{secrets.token_hex(5)}", credit_micros)[1]


class OtherTenant:
    """Another tenant's ordinary traffic, timed: GETs of one of its jobs in a thread of their
    own (not slowed by a flood's event loop), ten back to back before `start` returns (the
    baseline), then one every 20 ms until `stop`."""

    def __init__(self, fleet: Fleet, key: str, job_id: str, timeout: httpx.Timeout) -> None:
        self.fleet, self.key, self.path, self.timeout = fleet, key, f"/v1/jobs/{job_id}", timeout
        self.baseline: list[float] = []
        self.times: list[float] = []
        self.codes: list[int] = []
        self.failures: list[str] = []
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.fleet.client(self.key) as other:
            other.timeout = self.timeout
            for _ in range(10):
                began = time.monotonic()
                other.get(self.path).raise_for_status()
                self.baseline.append(time.monotonic() - began)
            self.ready.set()
            while not self.stopping.is_set():
                began = time.monotonic()
                try:
                    self.codes.append(other.get(self.path).status_code)
                except httpx.HTTPError as exc:
                    self.failures.append(f"other {type(exc).__name__}")
                self.times.append(time.monotonic() - began)
                time.sleep(0.02)

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(30)

    def stop(self, join: bool = True) -> None:
        self.stopping.set()
        if join:
            self.thread.join(30)


def morphology_svg(radius: int, side: int = 1000) -> bytes:
    """feMorphology over a whole `side` x `side` picture: resvg's time grows with radius^2
    (measured on 1 MP: radius 5 0.8 s, 20 9 s, 40 33 s; 150 would take minutes)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}">'
        f'<filter id="f"><feMorphology radius="{radius}"/></filter>'
        f'<rect width="{side}" height="{side}" fill="#38c" filter="url(#f)"/></svg>'
    ).encode()


def checkerboard_with_flat_tiles(side: int) -> bytes:
    """A 1-px checkerboard, flat grey where `quality.proxy` cuts its tiles: the search finds
    the lowest quality enough, the whole picture needs far more."""
    cells = np.array([[0, 255], [255, 0]], np.uint8)
    board = np.tile(cells, (side // 2 + 1, side // 2 + 1))[:side, :side]
    frame = np.repeat(board[:, :, None], 3, axis=2)
    step = (side - quality.TILE) / (quality.TILES - 1)
    starts = [int(i * step) // 16 * 16 for i in range(quality.TILES)]
    for top in starts:
        for left in starts:
            frame[top : top + quality.TILE, left : left + quality.TILE] = 128
    return images.encode(frame, "PNG")
