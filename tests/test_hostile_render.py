"""Hostile from-html jobs: rasters past Chromium's limits, and DevTools reachable by others.

A 65535 px viewport used to reach Chromium, fail its capture, relaunch the browser and end
INTERNAL_ERROR; a 200,000 px full page was captured whole. Both are refused now: the viewport
and clip at submission (400), the full page when measured, before any capture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fleet_harness import Fleet, descendants, process_table
from tests.hostile_inputs import HUGE_VIEWPORT, TALL_PAGE
from tests.render_helpers import CARD, render, render_worker_browsers


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (HUGE_VIEWPORT, "`$.width`"),
        ({"width": 100, "height": 16385}, "`$.height`"),
        ({"width": 10000, "height": 10000}, "`$.width`, `$.height`"),  # 100 MP > the fleet's 40
        ({"clip": {"x": 0, "y": 0, "width": 20000, "height": 10}}, "`$.clip.width`"),
        ({"clip": {"x": 0, "y": 0, "width": 7000, "height": 7000}}, "`$.clip.width`"),
    ],
)
def test_a_viewport_or_clip_past_the_render_limits_is_refused_at_submission(
    dir_fleet: Fleet, body: dict, path: str
) -> None:
    with dir_fleet.client() as client:
        response = client.post("/v1/jobs", json={"operation": "from-html", "html": "x", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and path in error["message"], error


@pytest.mark.parametrize(
    "page",
    [
        TALL_PAGE,  # a side over 16384
        '<div style="width:9000px;height:6000px"></div>',  # 54 MP: over the fleet's 40
    ],
)
def test_a_full_page_past_the_limits_fails_image_too_large_without_a_relaunch(
    dir_fleet: Fleet, page: str
) -> None:
    with dir_fleet.client() as client:
        job, _ = render(client, {"html": CARD})
        assert job["status"] == "succeeded", job
        browsers = render_worker_browsers(dir_fleet)
        job, _ = render(client, {"html": page, "fullPage": True})
        assert job["status"] == "failed" and job["attempts"] == 1, job
        assert job["error"]["code"] == "IMAGE_TOO_LARGE", job
        assert "the full page is" in job["error"]["message"]
        assert "FLEET_RENDER_MAX_SIDE" in job["error"]["message"]
        job, shot = render(client, {"html": CARD, "width": 300, "height": 150})
        assert job["status"] == "succeeded", job
        assert shot is not None and shot.shape[:2] == (150, 300)
    assert render_worker_browsers(dir_fleet) == browsers  # the same browser: no relaunch


# --- DevTools on a pipe, not a port ----------------------------------------------------


def _listening_inodes() -> set[str]:
    """Socket inodes of every TCP socket in LISTEN state (IPv4 and IPv6) on this machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pids: set[int]) -> set[str]:
    """Socket inodes open in any of `pids`."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _tree(pid: int) -> set[int]:
    return {pid} | descendants(pid)


def test_the_listener_check_sees_a_devtools_port(tmp_path: Path) -> None:
    """The check below is real: a Chromium started the old way is caught listening."""
    chromium = subprocess.Popen(
        [
            "/usr/bin/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _socket_inodes(_tree(chromium.pid)) & _listening_inodes():
            assert time.monotonic() < deadline, "chromium never listened on its port"
            time.sleep(0.1)
    finally:
        chromium.send_signal(signal.SIGKILL)
        chromium.wait()


def test_the_render_workers_chromium_listens_on_no_port(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        job, _ = render(client, {"html": CARD})
        assert job["status"] == "succeeded", job
        browsers = render_worker_browsers(dir_fleet)
        assert browsers, "the render worker runs a Chromium"
        table = process_table()
        for pid in browsers:
            assert "--remote-debugging-pipe" in table[pid][1]
            assert "--remote-debugging-port" not in table[pid][1]
            tree = _tree(pid)
            assert _socket_inodes(tree), "the check sees the browser's sockets"
            assert not _socket_inodes(tree) & _listening_inodes()
        job, _ = render(client, {"html": CARD, "fullPage": True})  # still drives it
        assert job["status"] == "succeeded", job


def test_the_pipe_renderer_leaves_no_process_or_descriptor_behind() -> None:
    """Launch, crash (SIGKILL), relaunch and close: both browsers are reaped, every pipe
    end is closed."""
    from worker.browser import Renderer

    before = set(os.listdir("/proc/self/fd"))
    renderer = Renderer("/usr/bin/chromium", timeout=20)
    try:
        renderer.render(CARD, 200, 200, {})
        first = renderer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        renderer.render(CARD, 200, 200, {})
        second = renderer.pid
        assert renderer.launches == 2 and second != first
    finally:
        renderer.close()
    renderer.loop.close()
    table = process_table()
    assert first not in table and second not in table  # reaped, not <defunct>
    assert set(os.listdir("/proc/self/fd")) <= before
