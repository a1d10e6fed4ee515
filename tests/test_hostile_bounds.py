"""Renderers bounded from outside the GIL (issue 25 item 2): resvg holds the job process's
GIL while it draws, so a lease renewed from a thread of that process stopped and the sweeper
resent a 205-byte SVG bomb while it still ran (three copies at once on both cpu children,
WORKER_LOST at 105 s). The lease is now renewed by each pool child's renewer process; the
bomb runs once, to its hard limit, and ends TIMEOUT; a slow honest SVG outlives its lease and
succeeds; a job whose child is killed twice ends POISON_JOB; `quality: "auto"` of a picture
whose sampled tiles say nothing of the rest keeps to a bounded number of full encodes and
a stated memory budget.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pytest

from tests import images
from tests.fleet_harness import Fleet, start_fleet, wait_for_job
from tests.hostile_inputs import checkerboard_with_flat_tiles, morphology_svg, new_tenant, put
from tests.hostile_measure import PoolPeak, memory_kb, pool_pids, wait_running
from worker import quality
from worker.budget import FIXED_BYTES, auto_allowed

pytestmark = pytest.mark.fleet  # starts its own servers

LEASE = 1.5  # seconds: a bomb or a slow SVG outlasts many leases
SOFT, HARD = 50, 60  # seconds: the fleet's time limits (the bomb would draw for minutes)
FLEET_ENV = {
    "FLEET_CPU_CONCURRENCY": "2",
    "FLEET_LEASE_SECONDS": str(LEASE),
    "FLEET_SWEEP_INTERVAL": "0.5",  # an expired lease would be resent within a second
    "FLEET_SOFT_TIME_LIMIT": str(SOFT),
    "FLEET_HARD_TIME_LIMIT": str(HARD),
}


BOMB = morphology_svg(150)
SLOW_SVG = morphology_svg(14)  # ~4.5 s on one idle core, 20 s on a loaded one


DRAW_SECONDS = 40  # FLEET_VECTOR_TIMEOUT of the sandboxed fleet: past a loaded slow SVG


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, draw_seconds: float) -> Fleet:
    env = {**FLEET_ENV, "FLEET_VECTOR_TIMEOUT": str(draw_seconds)}
    return start_fleet(tmp_path_factory.mktemp(name) / "var", env)


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """SVG and PDF pages drawn in a process of their own (the default)."""
    fleet = _start(tmp_path_factory, "sandboxed", DRAW_SECONDS)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """FLEET_VECTOR_TIMEOUT=0: resvg draws in the job's process, holding its GIL, as before:
    only the renewer process keeps the lease and only the hard limit stops the draw."""
    fleet = _start(tmp_path_factory, "in-process", 0)
    yield fleet
    fleet.stop()


def _convert(key: str, output: str) -> dict:
    return {"operation": "convert", "input": key, "format": "png", "output": output}


def _starts(fleet: Fleet, job_id: str) -> list[tuple[int, int]]:
    """(attempt, pid) of every run of the job the log says started."""
    pattern = re.compile(rf"job {job_id} \S+ attempt (\d+) started \(pid (\d+)\)")
    return [(int(a), int(p)) for a, p in pattern.findall(fleet.log_file.read_text())]


def _took(job: dict) -> float:
    started, finished = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def _bomb_beside_another_tenant(fleet: Fleet, timeout: float) -> tuple[str, dict, float]:
    """Run the bomb; while it draws (past several leases) another tenant's small job must
    complete on the other cpu child. The bomb's id, its ended job, its wall time."""
    assert len(BOMB) < 300
    with fleet.client() as client:
        put(client, "bomb.svg", BOMB)
        posted = time.monotonic()
        bomb = client.post("/v1/jobs", json=_convert("bomb.svg", "bomb.png")).json()["id"]
        wait_running(client, bomb)
        time.sleep(3 * LEASE)
        other_key = new_tenant(fleet, "other", 10_000_000)
        with fleet.client(other_key) as other:
            put(other, "small.png", images.encode(images.photo_like(64, 64, seed=3), "PNG"))
            small = other.post(
                "/v1/jobs", json={"operation": "grayscale", "input": "small.png"}
            ).json()["id"]
            done = wait_for_job(other, small, timeout=30)
        assert done["status"] == "succeeded", done
        assert client.get(f"/v1/jobs/{bomb}").json()["status"] == "running"  # meanwhile
        job = wait_for_job(client, bomb, timeout=timeout)
    return bomb, job, time.monotonic() - posted


def _ran_once(fleet: Fleet, job_id: str) -> None:
    assert [attempt for attempt, _ in _starts(fleet, job_id)] == [1]  # one copy ever ran
    log = fleet.log_file.read_text()
    assert f"job {job_id} running with an expired lease" not in log
    assert f"job {job_id}: attempt 1 lost its lease" not in log
    assert f"job {job_id}: the worker child running attempt 1 died under it" not in log


def test_the_svg_bomb_is_stopped_at_its_draw_deadline_while_another_tenant_is_served(
    sandboxed: Fleet,
) -> None:
    bomb, job, wall = _bomb_beside_another_tenant(sandboxed, DRAW_SECONDS + 60)
    print(f"\nSVG bomb, drawn apart: {job['status']} {job['error']} after {wall:.0f} s wall")
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT", job
    assert f"longer than {DRAW_SECONDS} s to draw" in job["error"]["message"]
    assert _took(job) < DRAW_SECONDS + 10
    _ran_once(sandboxed, bomb)


def scaled_pattern_svg(scale: int, side: int = 1000) -> bytes:
    """A 10 px pattern tile scaled `scale` times: resvg draws the tile at that scale first
    (3000: a 30000 x 30000 tile; 951 MB peak RSS drawn in a job's process, measured)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}">'
        f'<pattern id="p" width="10" height="10" patternUnits="userSpaceOnUse"'
        f' patternTransform="scale({scale})"><rect width="5" height="5" fill="#38c"/></pattern>'
        f'<rect width="{side}" height="{side}" fill="url(#p)"/></svg>'
    ).encode()


def test_an_svg_that_needs_a_gigabyte_to_draw_fails_image_too_large(sandboxed: Fleet) -> None:
    cpu_children = pool_pids(sandboxed)
    with sandboxed.client() as client:
        put(client, "pattern.svg", scaled_pattern_svg(3000))
        job_id = client.post("/v1/jobs", json=_convert("pattern.svg", "p.png")).json()["id"]
        job = wait_for_job(client, job_id, timeout=DRAW_SECONDS + 60)
    print(
        f"\na 30000 px pattern tile at 1 MP: {job['status']} {job['error']} in {_took(job):.1f} s"
    )
    assert job["status"] == "failed" and job["error"]["code"] == "IMAGE_TOO_LARGE", job
    assert "of memory to draw" in job["error"]["message"]
    _ran_once(sandboxed, job_id)
    assert cpu_children <= pool_pids(sandboxed)  # no pool child died for it


@pytest.mark.parametrize("fleet_name", ["sandboxed", "in_process"])
def test_a_slow_honest_svg_outlives_its_lease_and_succeeds(
    fleet_name: str, request: pytest.FixtureRequest
) -> None:
    fleet = request.getfixturevalue(fleet_name)
    with fleet.client() as client:
        put(client, "slow.svg", SLOW_SVG)
        job_id = client.post("/v1/jobs", json=_convert("slow.svg", "slow.png")).json()["id"]
        job = wait_for_job(client, job_id, timeout=SOFT + 60)
    print(f"\nslow SVG ({fleet_name}): {job['status']} in {_took(job):.1f} s, {LEASE:g} s lease")
    assert job["status"] == "succeeded", job
    assert _took(job) > 2 * LEASE  # the test means something only if this holds
    assert job["attempts"] == 1
    _ran_once(fleet, job_id)


def test_the_svg_bomb_holding_the_gil_runs_once_to_its_hard_limit(in_process: Fleet) -> None:
    bomb, job, wall = _bomb_beside_another_tenant(in_process, HARD + 60)
    print(f"\nSVG bomb, in process: {job['status']} {job['error']['code']} after {wall:.0f} s")
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT", job
    assert _took(job) < HARD + 15  # killed at its hard limit, not after minutes
    assert [attempt for attempt, _ in _starts(in_process, bomb)] == [1]
    log = in_process.log_file.read_text()
    assert f"job {bomb} running with an expired lease" not in log
    assert f"job {bomb}: attempt 1 lost its lease" not in log
    assert f"job {bomb} was killed at its hard time limit" in log


def _kill_run(fleet: Fleet, job_id: str, attempt: int) -> None:
    """SIGKILL the pool child running the job's `attempt` (as the OOM killer would)."""
    deadline = time.monotonic() + 60
    while not (pids := [p for a, p in _starts(fleet, job_id) if a == attempt]):
        assert time.monotonic() < deadline, f"attempt {attempt} of {job_id} never started"
        time.sleep(0.05)
    time.sleep(0.5)  # mid-draw
    os.kill(pids[0], signal.SIGKILL)


def test_a_job_that_kills_its_worker_twice_ends_poison_job(in_process: Fleet) -> None:
    fleet = in_process
    with fleet.client() as client:
        put(client, "poison.svg", morphology_svg(150, 999))
        job_id = client.post("/v1/jobs", json=_convert("poison.svg", "poison.png")).json()["id"]
        _kill_run(fleet, job_id, 1)
        _kill_run(fleet, job_id, 2)
        job = wait_for_job(client, job_id, timeout=60)
    print(f"\nkilled twice: {job['status']} {job['error']} after {job['attempts']} runs")
    assert job["status"] == "failed" and job["error"]["code"] == "POISON_JOB", job
    assert "2 times" in job["error"]["message"]
    assert [attempt for attempt, _ in _starts(fleet, job_id)] == [1, 2]  # not a third run
    log = fleet.log_file.read_text()
    for attempt in (1, 2):
        assert f"job {job_id}: the worker child running attempt {attempt} died under it" in log


AUTO_SIDE = 4000  # 16 MP


def test_auto_quality_of_a_misleading_picture_keeps_its_memory_and_time(
    sandboxed: Fleet,
) -> None:
    fleet = sandboxed
    pixels = AUTO_SIDE * AUTO_SIDE
    data = checkerboard_with_flat_tiles(AUTO_SIDE)
    body = {
        "operation": "convert",
        "input": "board.png",
        "format": "jpeg",
        "quality": "auto",
        "ssim": 0.999,
    }
    with fleet.client() as client:
        put(client, "board.png", data)
        before = max(memory_kb(pid).get("VmRSS", 0) * 1024 for pid in pool_pids(fleet))
        with PoolPeak(fleet) as peak:
            job_id = client.post("/v1/jobs", json=body).json()["id"]
            job = wait_for_job(client, job_id, timeout=SOFT + 30)
    growth = peak.peak - before
    # The input's raster (3 bytes a pixel) and its PNG are the job's input, not the search's.
    limit = auto_allowed("jpeg", pixels) + 3 * pixels + len(data) + FIXED_BYTES
    print(
        f"\nauto of {pixels / 1e6:.0f} MP: {job['status']} q={job.get('result', {}).get('quality')}"
        f" in {_took(job):.1f} s, cpu child peak +{growth / 2**20:.0f} MiB"
        f" (allowed {limit / 2**20:.0f})"
    )
    assert job["status"] == "succeeded", job
    assert job["result"]["ssim"] >= 0.999
    assert growth <= limit


def test_banded_ssim_of_two_frames_equals_the_whole_planes() -> None:
    rng = np.random.default_rng(5)
    picture = rng.integers(0, 256, (3 * quality.BAND + 77, 300, 4), np.uint8)
    encoded = np.clip(picture.astype(np.int16) + rng.integers(-9, 9, picture.shape), 0, 255)
    encoded = encoded.astype(np.uint8)
    whole = quality.ssim(quality.luma(picture), quality.luma(encoded))
    banded = quality.ssim_frames(picture, lambda top, bottom: encoded[top:bottom])
    assert banded == pytest.approx(whole, abs=1e-9)
    assert 0.5 < whole < 0.999  # a real difference was measured


def test_a_missed_target_is_raised_at_most_twice() -> None:
    assert quality.raised(20) == [60, 100]
    assert quality.raised(99) == [100]
    assert quality.raised(100) == []
    assert all(len(quality.raised(q)) <= quality.FULL_ENCODES - 1 for q in range(20, 101))
