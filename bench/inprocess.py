"""Part 1: in-process throughput on one core, the fleet's code path beside pyvips.

Each task is the whole path a job takes (decode, operate, encode) on the same JPEG; both
sides run pinned to one core in this process, one after the other.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing import Process
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

os.environ["VIPS_CONCURRENCY"] = "1"  # before pyvips loads libvips

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pyvips  # noqa: E402
from PIL import Image  # noqa: E402

from bench.quality import ssim  # noqa: E402
from imagefleet.settings import load_settings  # noqa: E402
from jobs.crop import CropJob  # noqa: E402
from jobs.formats import ConvertJob  # noqa: E402
from jobs.geometry import ResizeJob  # noqa: E402
from jobs.spec import ImageJob, Rect  # noqa: E402
from worker import codec  # noqa: E402
from worker.header_facts import facts_picture  # noqa: E402
from worker.inputs import crop_window  # noqa: E402
from worker.ops.convert import convert  # noqa: E402
from worker.ops.crop import crop  # noqa: E402
from worker.ops.metadata import describe  # noqa: E402
from worker.ops.resize import resize  # noqa: E402
from worker.picture import Picture  # noqa: E402

LIMITS = codec.Limits()
CFG = load_settings()  # the handlers' third argument


def per_second(task: Callable[[], object], seconds: float = 1.5) -> float:
    task()  # warm
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        task()
        runs += 1
    return runs / (time.perf_counter() - started)


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], rounds: int = 9, seconds: float = 0.3
) -> tuple[float, float, float]:
    """(ours/s, theirs/s, ratio): medians over interleaved short rounds. On a shared VM the
    speed of the machine drifts by tens of percent within seconds; alternating the two sides
    exposes both to the same drift, and the median drops the rounds a neighbour disturbed."""
    mine, vips, ratios = [], [], []
    for _ in range(rounds):
        a, b = per_second(ours, seconds), per_second(theirs, seconds)
        mine.append(a)
        vips.append(b)
        ratios.append(a / b)
    return statistics.median(mine), statistics.median(vips), statistics.median(ratios)


def fleet_task(data: bytes, spec: ImageJob, op: Callable, fmt: str) -> Callable[[], bytes]:
    def run() -> bytes:
        picture = codec.decode(
            data, LIMITS, scale_for=spec.decode_scale, window=crop_window(spec)
        )  # as worker.inputs decodes: a crop's window only
        out = op([picture], spec, CFG).picture
        return codec.encode(out, fmt, 80, None, avif_speed=8, webp_method=4)

    return run


def _header_facts(data: bytes) -> Picture:
    picture = facts_picture(data, LIMITS)  # what a metadata job reads (worker.inputs)
    assert picture is not None
    return picture


def _vips_header(data: bytes) -> dict[str, object]:
    """libvips' lazy open: the same facts from the header, no pixels decoded."""
    image = pyvips.Image.new_from_buffer(data, "")
    fields = set(image.get_fields())
    return {
        "size": (image.width, image.height, image.bands, image.format, image.interpretation),
        "orientation": image.get("orientation") if "orientation" in fields else 1,
        "icc": len(image.get("icc-profile-data")) if "icc-profile-data" in fields else 0,
        "exif": "exif-data" in fields,
    }


def _resize_for(data: bytes, seconds: float, start: Event, out: Queue[float]) -> None:
    cv2.setNumThreads(1)
    task = fleet_task(data, ResizeJob(input="x", width=720, fit="inside"), resize, "jpeg")
    task()  # warm
    start.wait()
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        task()
        runs += 1
    out.put(runs / (time.perf_counter() - began))


def parallel_resize_rate(data: bytes, processes: int, seconds: float = 3.0) -> float:
    """Resizes per second of `processes` in-process workers running at once: what the
    same cores do without queue, storage or HTTP (the fleet's overhead baseline)."""
    start = multiprocessing.Event()
    out: Queue[float] = multiprocessing.Queue()
    workers = [
        Process(target=_resize_for, args=(data, seconds, start, out)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # every worker warm before the clock starts
    start.set()
    total = sum(out.get() for _ in workers)
    for worker in workers:
        worker.join()
    return total


def run(data: bytes) -> dict[str, dict[str, float]]:
    cv2.setNumThreads(1)
    resize_spec = ResizeJob(input="x", width=720, fit="inside")
    crop_spec = CropJob(input="x", rect=Rect(x=100, y=50, width=800, height=600))

    tasks = {
        "resize to 720 wide (jpeg q80)": (
            fleet_task(data, resize_spec, resize, "jpeg"),
            lambda: pyvips.Image.thumbnail_buffer(data, 720, height=10**7).jpegsave_buffer(Q=80),
        ),
        "crop 800x600 (jpeg q80)": (
            fleet_task(data, crop_spec, crop, "jpeg"),
            lambda: (
                pyvips.Image.new_from_buffer(data, "", access="sequential")
                .crop(100, 50, 800, 600)
                .jpegsave_buffer(Q=80)
            ),
        ),
        "metadata (header facts)": (
            lambda: describe(_header_facts(data)),
            lambda: _vips_header(data),
        ),
        "convert to webp q80": (
            fleet_task(data, ConvertJob(input="x", format="webp"), convert, "webp"),
            lambda: pyvips.Image.new_from_buffer(data, "", access="sequential").webpsave_buffer(
                Q=80, effort=4
            ),
        ),
        "convert to avif q80": (
            fleet_task(data, ConvertJob(input="x", format="avif"), convert, "avif"),
            lambda: pyvips.Image.new_from_buffer(data, "", access="sequential").heifsave_buffer(
                Q=80, compression="av1", effort=1
            ),
        ),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (ours, theirs) in tasks.items():
        mine, vips, ratio = compare(ours, theirs)
        results[name] = {
            "fleet_per_s": round(mine, 2),
            "pyvips_per_s": round(vips, 2),
            "ratio": round(ratio, 2),
        }
    # Resize quality before encoding (JPEG error would swamp it): the fleet's pixels and
    # libvips' against Lanczos from the full-size decode.
    full = Image.open(io.BytesIO(data)).convert("RGB")
    height = round(full.height * 720 / full.width)
    reference = np.asarray(full.resize((720, height), Image.Resampling.LANCZOS).convert("L"))
    picture = codec.decode(data, LIMITS, scale_for=resize_spec.decode_scale)
    resized = resize([picture], resize_spec, CFG).picture
    assert resized is not None  # resize makes an image
    fleet_grey = np.asarray(Image.fromarray(resized.first).convert("L"))
    thumb = pyvips.Image.thumbnail_buffer(data, 720, height=10**7)
    vips_grey = np.asarray(
        Image.fromarray(
            np.ndarray(
                buffer=thumb.write_to_memory(),
                dtype=np.uint8,
                shape=(thumb.height, thumb.width, thumb.bands),
            )
        ).convert("L")
    )
    rows = min(fleet_grey.shape[0], vips_grey.shape[0], reference.shape[0])
    row = results["resize to 720 wide (jpeg q80)"]
    row["ssim_vs_lanczos"] = round(ssim(fleet_grey[:rows], reference[:rows]), 4)
    row["pyvips_ssim_vs_lanczos"] = round(ssim(vips_grey[:rows], reference[:rows]), 4)
    return results
