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

LEASE = 2.0  # seconds: a bomb or a slow SVG outlasts many leases
SOFT, HARD = 40, 50  # seconds: the fleet's time limits (the bomb would draw for minutes)
FLEET_ENV = {
    "FLEET_CPU_CONCURRENCY": "2",
    "FLEET_LEASE_SECONDS": str(LEASE),
    "FLEET_SWEEP_INTERVAL": "0.5",  # an expired lease would be resent within a second
    "FLEET_SOFT_TIME_LIMIT": str(SOFT),
    "FLEET_HARD_TIME_LIMIT": str(HARD),
}


BOMB = morphology_svg(150)
SLOW_SVG = morphology_svg(14)  # ~5 s on one idle core: several leases


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("bounds") / "var", FLEET_ENV)
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


def test_the_svg_bomb_runs_once_to_its_hard_limit_while_another_tenant_is_served(
    fleet: Fleet,
) -> None:
    assert len(BOMB) < 300
    with fleet.client() as client:
        put(client, "bomb.svg", BOMB)
        posted = time.monotonic()
        bomb = client.post("/v1/jobs", json=_convert("bomb.svg", "bomb.png")).json()["id"]
        wait_running(client, bomb)
        time.sleep(3 * LEASE)  # the bomb draws, holding its child's GIL, past several leases
        other_key = new_tenant(fleet, "other", 10_000_000)
        with fleet.client(other_key) as other:
            put(other, "small.png", images.encode(images.photo_like(64, 64, seed=3), "PNG"))
            small = other.post(
                "/v1/jobs", json={"operation": "grayscale", "input": "small.png"}
            ).json()["id"]
            done = wait_for_job(other, small, timeout=30)
        assert done["status"] == "succeeded", done
        assert client.get(f"/v1/jobs/{bomb}").json()["status"] == "running"  # meanwhile
        job = wait_for_job(client, bomb, timeout=HARD + 60)
        wall = time.monotonic() - posted
    print(f"\nSVG bomb: {job['status']} {job['error']['code']} after {wall:.0f} s wall")
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT", job
    assert _took(job) < HARD + 15  # killed at its hard limit, not after minutes
    assert [attempt for attempt, _ in _starts(fleet, bomb)] == [1]  # one copy ever ran
    log = fleet.log_file.read_text()
    assert f"job {bomb} running with an expired lease" not in log
    assert f"job {bomb}: attempt 1 lost its lease" not in log
    assert f"job {bomb} was killed at its hard time limit" in log


def test_a_slow_honest_svg_outlives_its_lease_and_succeeds(fleet: Fleet) -> None:
    with fleet.client() as client:
        put(client, "slow.svg", SLOW_SVG)
        job_id = client.post("/v1/jobs", json=_convert("slow.svg", "slow.png")).json()["id"]
        job = wait_for_job(client, job_id, timeout=SOFT + 60)
    print(f"\nslow SVG: {job['status']} in {_took(job):.1f} s under a {LEASE:g} s lease")
    assert job["status"] == "succeeded", job
    assert _took(job) > 2 * LEASE  # the test means something only if this holds
    assert job["attempts"] == 1
    assert [attempt for attempt, _ in _starts(fleet, job_id)] == [1]
    log = fleet.log_file.read_text()
    assert f"job {job_id} running with an expired lease" not in log
    assert f"job {job_id}: attempt 1 lost its lease" not in log


def _kill_run(fleet: Fleet, job_id: str, attempt: int) -> None:
    """SIGKILL the pool child running the job's `attempt` (as the OOM killer would)."""
    deadline = time.monotonic() + 60
    while not (pids := [p for a, p in _starts(fleet, job_id) if a == attempt]):
        assert time.monotonic() < deadline, f"attempt {attempt} of {job_id} never started"
        time.sleep(0.05)
    time.sleep(0.5)  # mid-draw
    os.kill(pids[0], signal.SIGKILL)


def test_a_job_that_kills_its_worker_twice_ends_poison_job(fleet: Fleet) -> None:
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


def test_auto_quality_of_a_misleading_picture_keeps_its_memory_and_time(fleet: Fleet) -> None:
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
