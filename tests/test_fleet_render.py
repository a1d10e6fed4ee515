"""from-html on the render pool: validation, pixels, the network sandbox, crash recovery."""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.fleet_harness import Fleet, descendants, process_table

CARD = ('<body style="margin:0;background:#ffffff">'
        '<div style="width:200px;height:100px;background:#1e90ff"></div>'
        '<div style="width:200px;height:100px;background:#ff4500"></div></body>')


def _render(client, body: dict) -> tuple[dict, np.ndarray | None]:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs?wait=60", json={"operation": "from-html", **body})
    assert response.status_code == 200, response.text
    job = response.json()
    if job["status"] != "succeeded":
        return job, None
    data = client.get(f"/v1/objects/{job['result']['output']}").content
    return job, np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize(("body", "status", "code", "path"), [
    ({"html": "x", "fullPage": True, "clip": {"x": 0, "y": 0, "width": 5, "height": 5}},
     400, "VALIDATION_ERROR", "`$.clip`"),
    ({"html": "x", "type": "jpeg", "omitBackground": True}, 400, "VALIDATION_ERROR",
     "`$.omitBackground`"),
    ({"html": "x", "type": "gif"}, 400, "VALIDATION_ERROR", "`$.type`"),
    ({"html": "x", "width": 0}, 400, "VALIDATION_ERROR", "`$.width`"),
    ({"html": "x", "input": "a.png"}, 400, "VALIDATION_ERROR", "`input`"),
    ({}, 400, "VALIDATION_ERROR", "`html`"),
    ({"html": "x" * (1024 * 1024 + 1)}, 422, "HTML_TOO_LARGE", "limit"),
])
def test_render_specs_are_checked_before_anything_runs(
        dir_fleet: Fleet, body: dict, status: int, code: str, path: str) -> None:
    with dir_fleet.client() as client:
        response = client.post("/v1/jobs", json={"operation": "from-html", **body})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert path in response.json()["error"]["message"]


def test_viewport_full_page_clip_and_transparency(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        job, shot = _render(client, {"html": CARD, "width": 300, "height": 150})
        assert job["status"] == "succeeded", job
        assert shot is not None and shot.shape[:2] == (150, 300)
        assert tuple(shot[50, 100, :3]) == (0x1E, 0x90, 0xFF)  # first div
        assert tuple(shot[125, 100, :3]) == (0xFF, 0x45, 0x00)  # second div, in the viewport
        assert tuple(shot[50, 250, :3]) == (255, 255, 255)  # page background

        _, full = _render(client, {"html": CARD, "width": 300, "height": 120, "fullPage": True})
        assert full is not None and full.shape[:2] == (200, 300)  # the whole 200 px page

        _, clipped = _render(client, {"html": CARD, "clip": {"x": 150, "y": 90, "width": 40,
                                                              "height": 20}})
        assert clipped is not None and clipped.shape[:2] == (20, 40)
        assert tuple(clipped[5, 20, :3]) == (0x1E, 0x90, 0xFF)  # y 95: still the first div
        assert tuple(clipped[15, 20, :3]) == (0xFF, 0x45, 0x00)  # y 105: the second

        html = '<div style="width:50px;height:50px;background:#00ff00"></div>'
        _, clear = _render(client, {"html": html, "width": 100, "height": 100,
                                    "omitBackground": True})
        assert clear is not None and clear.shape[2] == 4
        assert clear[90, 90, 3] == 0 and tuple(clear[20, 20]) == (0, 255, 0, 255)

        job, jpeg = _render(client, {"html": CARD, "type": "jpeg", "quality": 90})
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
        dir_fleet: Fleet, listener: _CountingServer) -> None:
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
        job, shot = _render(client, {"html": hostile, "width": 200, "height": 200})
    assert job["status"] == "succeeded", job
    assert listener.accepted == 0
    assert shot is not None and tuple(shot[199, 199, :3]) == (0, 255, 0)  # the script never ran


def _render_worker_browsers(fleet: Fleet) -> list[int]:
    """Main Chromium processes (a child of a non-Chromium process) under this fleet."""
    table = process_table()

    def args(pid: int) -> str:
        return table.get(pid, (0, ""))[1]

    return [pid for pid in descendants(fleet.child.pid, table)
            if "chrom" in args(pid) and "chrom" not in args(table[pid][0])]


def test_a_crashed_browser_is_relaunched_and_the_job_still_succeeds(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        job, _ = _render(client, {"html": CARD})
        assert job["status"] == "succeeded", job
        browsers = _render_worker_browsers(dir_fleet)
        assert browsers, "the render worker runs a Chromium"
        for pid in browsers:
            os.kill(pid, signal.SIGKILL)
        job, shot = _render(client, {"html": CARD, "width": 300, "height": 150})
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1  # retried inside the worker, not redelivered
    assert shot is not None and tuple(shot[50, 100, :3]) == (0x1E, 0x90, 0xFF)
    assert set(_render_worker_browsers(dir_fleet)).isdisjoint(browsers)
