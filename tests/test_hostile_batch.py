"""`imagefleet batch` as a user runs it (the real command, output to pipes) on a real fleet.

Before: a.gif and a.webp both became a.webp (one silently overwrote the other), failures
were counted by code without a file name or message, the progress bar wrote `\\r` into
pipes, and `--op metadata --out DIR` saved nothing.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

from PIL import Image

from tests.fleet_harness import ROOT, Fleet
from tests.images import encode, photo_like

IMAGEFLEET = Path(sys.executable).parent / "imagefleet"


def _animation(fmt: str, size: tuple[int, int], colours: list[tuple[int, int, int]]) -> bytes:
    frames = [Image.new("RGB", size, colour) for colour in colours]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def _batch(fleet: Fleet, *argv: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [
            str(IMAGEFLEET),
            "batch",
            *argv,
            "--url",
            fleet.base_url,
            "--key",
            fleet.api_key,
            "--prefix",
            f"hostile-batch-{uuid.uuid4().hex[:10]}",
        ],
        capture_output=True,
        timeout=300,
        cwd=ROOT,
    )
    # Decoded by hand: text=True would turn every `\r` into `\n` and hide a progress bar.
    return subprocess.CompletedProcess(
        run.args, run.returncode, run.stdout.decode(), run.stderr.decode()
    )


def _inputs(src: Path) -> dict[str, tuple[int, int]]:
    """Two inputs sharing a stem, a still PNG and a broken file; name -> (width, height)."""
    src.mkdir()
    (src / "rotating-squares.gif").write_bytes(
        _animation("GIF", (60, 48), [(255, 0, 0), (0, 0, 255)])
    )
    (src / "rotating-squares.webp").write_bytes(
        _animation("WEBP", (90, 30), [(0, 255, 0), (255, 255, 0)])
    )
    (src / "photo.png").write_bytes(encode(photo_like(120, 80), "PNG"))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return {p.name: Image.open(p).size for p in src.iterdir() if p.name != "broken.jpg"}


def test_batch_keeps_every_output_and_names_every_failure(dir_fleet: Fleet, tmp_path: Path) -> None:
    sizes = _inputs(tmp_path / "src")
    out = tmp_path / "out"
    run = _batch(
        dir_fleet,
        str(tmp_path / "src"),
        "--op",
        "resize",
        "--width",
        "30",
        "--format",
        "webp",
        "--out",
        str(out),
    )
    assert run.returncode == 1, run  # one input is broken
    assert "\r" not in run.stdout and "\r" not in run.stderr  # not a terminal: no bar
    assert sorted(p.name for p in out.iterdir()) == [
        "photo.png.webp",
        "rotating-squares.gif.webp",
        "rotating-squares.webp.webp",
    ]
    for name, (width, height) in sizes.items():
        with Image.open(out / f"{name}.webp") as shot:
            assert shot.size == (30, round(30 * height / width)), name
    gif, webp = (
        Image.open(out / f"rotating-squares.{ext}.webp").convert("RGB") for ext in ("gif", "webp")
    )
    gif_pixel, webp_pixel = gif.getpixel((5, 5)), webp.getpixel((5, 5))
    assert isinstance(gif_pixel, tuple) and isinstance(webp_pixel, tuple)  # RGB
    assert gif_pixel[0] > 200 and webp_pixel[1] > 200  # red, green
    summary = " ".join(run.stdout.split())
    assert "succeeded 3" in summary and "failed 1" in summary
    failure = next(line for line in run.stdout.splitlines() if "broken.jpg" in line)
    code, message = failure.split(": ", 2)[1:]
    assert code in ("IMAGE_PARSE_FAILED", "VALIDATION_ERROR") and message.strip(), failure
    assert len(run.stderr.splitlines()) == 4  # one plain progress line per file


def test_batch_metadata_saves_each_json_result(dir_fleet: Fleet, tmp_path: Path) -> None:
    sizes = _inputs(tmp_path / "src")
    (tmp_path / "src" / "broken.jpg").unlink()
    out = tmp_path / "out"
    run = _batch(dir_fleet, str(tmp_path / "src"), "--op", "metadata", "--out", str(out))
    assert run.returncode == 0, run
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.json" for name in sizes)
    for name, (width, height) in sizes.items():
        result = json.loads((out / f"{name}.json").read_text())
        assert (result["metadata"]["width"], result["metadata"]["height"]) == (width, height)
    frames = json.loads((out / "rotating-squares.gif.json").read_text())["metadata"]["frames"]
    assert frames == 2
