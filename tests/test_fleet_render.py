"""from-html on the render pool: validation, pixels, the network sandbox, crash recovery."""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fleet_harness import Fleet, process_table
from tests.render_helpers import CARD, render, render_worker_browsers


@pytest.mark.parametrize(
    ("body", "status", "code", "path"),
    [
        (
            {"html": "x", "fullPage": True, "clip": {"x": 0, "y": 0, "width": 5, "height": 5}},
            400,
            "VALIDATION_ERROR",
            "`$.clip`",
        ),
        (
            {"html": "x", "type": "jpeg", "omitBackground": True},
            400,
            "VALIDATION_ERROR",
            "`$.omitBackground`",
        ),
        ({"html": "x", "type": "gif"}, 400, "VALIDATION_ERROR", "`$.type`"),
        ({"html": "x", "width": 0}, 400, "VALIDATION_ERROR", "`$.width`"),
        ({"html": "x", "input": "a.png"}, 400, "VALIDATION_ERROR", "`input`"),
        ({}, 400, "VALIDATION_ERROR", "`html`"),
        ({"html": "x" * (1024 * 1024 + 1)}, 422, "HTML_TOO_LARGE", "limit"),
    ],
)
def test_render_specs_are_checked_before_anything_runs(
    dir_fleet: Fleet, body: dict, status: int, code: str, path: str
) -> None:
    with dir_fleet.client() as client:
        response = client.post("/v1/jobs", json={"operation": "from-html", **body})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert path in response.json()["error"]["message"]


def test_viewport_full_page_clip_and_transparency(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        job, shot = render(client, {"html": CARD, "width": 300, "height": 150})
        assert job["status"] == "succeeded", job
        assert shot is not None and shot.shape[:2] == (150, 300)
        assert tuple(shot[50, 100, :3]) == (0x1E, 0x90, 0xFF)  # first div
        assert tuple(shot[125, 100, :3]) == (0xFF, 0x45, 0x00)  # second div, in the viewport
        assert tuple(shot[50, 250, :3]) == (255, 255, 255)  # page background

        _, full = render(client, {"html": CARD, "width": 300, "height": 120, "fullPage": True})
        assert full is not None and full.shape[:2] == (200, 300)  # the whole 200 px page

        _, clipped = render(
            client, {"html": CARD, "clip": {"x": 150, "y": 90, "width": 40, "height": 20}}
        )
        assert clipped is not None and clipped.shape[:2] == (20, 40)
        assert tuple(clipped[5, 20, :3]) == (0x1E, 0x90, 0xFF)  # y 95: still the first div
        assert tuple(clipped[15, 20, :3]) == (0xFF, 0x45, 0x00)  # y 105: the second

        html = '<div style="width:50px;height:50px;background:#00ff00"></div>'
        _, clear = render(
            client, {"html": html, "width": 100, "height": 100, "omitBackground": True}
        )
        assert clear is not None and clear.shape[2] == 4
        assert clear[90, 90, 3] == 0 and tuple(clear[20, 20]) == (0, 255, 0, 255)

        job, jpeg = render(client, {"html": CARD, "type": "jpeg", "quality": 90})
        assert job["result"]["format"] == "jpeg" and jpeg is not None
        assert np.abs(jpeg[50, 100, :3].astype(int) - (0x1E, 0x90, 0xFF)).max() < 12


class _CountingServer:
    """A loopback TCP server that counts every connection it accepts (HTTP or not)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_CountingServer]:
    server = _CountingServer()
    yield server
    server.stop()


def test_the_sandbox_makes_no_connection_and_runs_no_javascript(
    dir_fleet: Fleet, listener: _CountingServer
) -> None:
    url = f"http://127.0.0.1:{listener.port}"
    hostile = f"""<html><head>
      <base href="{url}/base/">
      <link rel="stylesheet" href="{url}/style.css"><link rel="preload" href="{url}/p" as="image">
      <link rel="prefetch" href="{url}/prefetch"><link rel="icon" href="{url}/favicon.ico">
      <meta http-equiv="refresh" content="0; url={url}/refresh">
      <style>@import url("{url}/import.css");
        @font-face {{ font-family: x; src: url("{url}/font.woff"); }}
        body {{ font-family: x; background: #00ff00 url("{url}/bg.png"); margin: 0 }}</style>
      <script src="{url}/script.js"></script>
      <script>document.body.style.background = "#ff0000";
        new WebSocket("ws://127.0.0.1:{listener.port}/ws"); fetch("{url}/fetch");</script>
    </head><body>
      <img src="{url}/img.png"><img srcset="{url}/srcset.png 2x">
      <img src="https://127.0.0.1:{listener.port}/tls.png"><img src="relative.png">
      <iframe src="{url}/frame"></iframe><object data="{url}/object"></object>
      <video poster="{url}/poster.png" src="{url}/video.mp4"></video>
      <svg><image href="{url}/svg.png" width="10" height="10"/></svg>
      <img src="file:///etc/passwd"><iframe src="file:///etc/hostname"></iframe>
    </body></html>"""
    with dir_fleet.client() as client:
        job, shot = render(client, {"html": hostile, "width": 200, "height": 200})
    assert job["status"] == "succeeded", job
    assert listener.accepted == 0
    assert shot is not None and tuple(shot[199, 199, :3]) == (0, 255, 0)  # the script never ran


def test_a_crashed_browser_is_relaunched_and_the_job_still_succeeds(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        job, _ = render(client, {"html": CARD})
        assert job["status"] == "succeeded", job
        browsers = render_worker_browsers(dir_fleet)
        assert browsers, "the render worker runs a Chromium"
        for pid in browsers:
            os.kill(pid, signal.SIGKILL)
        job, shot = render(client, {"html": CARD, "width": 300, "height": 150})
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1  # retried inside the worker, not redelivered
    assert shot is not None and tuple(shot[50, 100, :3]) == (0x1E, 0x90, 0xFF)
    assert set(render_worker_browsers(dir_fleet)).isdisjoint(browsers)


def test_a_pathological_page_is_cut_at_the_render_timeout_and_the_next_one_renders() -> None:
    """Stacked full-page blurs, shadows and blend modes: minutes of raster work without
    JavaScript. The render stops at the timeout, fails TIMEOUT, and the browser that was
    stuck in it is replaced (in-process, so the timeout can be 3 s)."""
    from jobs.errors import FleetError
    from worker.browser import Renderer

    style = (
        "<style>div{filter:blur(30px) drop-shadow(0 0 90px red);position:absolute;"
        "box-shadow:0 0 300px 80px #123;border-radius:50%;width:1000px;height:1000px;"
        "top:0;left:0;mix-blend-mode:difference}</style>"
    )
    renderer = Renderer("/usr/bin/chromium", timeout=3)
    try:
        renderer.render(CARD, 200, 200, {})
        stuck = renderer.pid
        with pytest.raises(FleetError) as failure:
            renderer.render(style + "<div>x</div>" * 500, 1000, 1000, {})
        assert failure.value.code.value == "TIMEOUT"
        assert renderer.launches == 1  # not relaunched to run the same page again
        assert stuck is not None and stuck not in process_table()  # the stuck browser is gone
        shot = np.asarray(Image.open(io.BytesIO(renderer.render(CARD, 200, 200, {}))))
        assert tuple(shot[50, 100, :3]) == (0x1E, 0x90, 0xFF)
        assert renderer.launches == 2
    finally:
        renderer.close()


def _resolver_hosts(net_log: str) -> set[str]:
    """Host names handed to Chromium's host resolver, from its own net log (JSON)."""
    import json

    try:
        log = json.loads(net_log)
    except ValueError:  # the log of a browser that did not close is cut off mid-list
        log = json.loads(net_log[: net_log.rindex("}") + 1] + "]}")
    request = log["constants"]["logEventTypes"]["HOST_RESOLVER_MANAGER_REQUEST"]
    return {
        event["params"]["host"]
        for event in log["events"]
        if event["type"] == request and "host" in event.get("params", {})
    }


def test_no_host_name_reaches_a_resolver(tmp_path: Path) -> None:
    """DNS prefetch, preconnect, links, frames and Chromium's own background requests: with
    the sandbox's resolver rule every name maps to `~NOTFOUND` before any lookup. Without
    the rule this log names Google hosts and the page's hosts (the test would fail)."""
    from worker.browser import Renderer

    hostile = """<html><head><link rel="dns-prefetch" href="//probe-prefetch.example.com">
      <link rel="preconnect" href="https://probe-preconnect.example.com">
      <link rel="stylesheet" href="http://probe-css.example.com/a.css"></head><body>
      <img src="http://probe-img.example.com/x.png"><a href="http://probe-a.example.com">a</a>
      <iframe src="https://probe-frame.example.com/"></iframe></body></html>"""
    net_log = tmp_path / "net-log.json"
    renderer = Renderer(
        "/usr/bin/chromium",
        timeout=20,
        extra_flags=(f"--log-net-log={net_log}", "--net-log-capture-mode=Everything"),
    )
    try:
        renderer.render(hostile, 300, 200, {})
    finally:
        renderer.close()
    hosts = _resolver_hosts(net_log.read_text())
    assert {host.split("://")[-1] for host in hosts} <= {"~notfound"}, hosts
