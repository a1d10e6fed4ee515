"""Issue 25's "smaller" attacks as rows of tests/hostile_report.py (ATTACKS), each with the
CPU seconds the gateway and the cpu pool spent on it in its details. Run alone for
before/after figures: the fleet runs the code of the checkout it is started in (`python -m`
puts the working directory first), the attacks and the measuring are this checkout's:

    .venv/bin/python -m tests.hostile_limits_report                 # this checkout's fleet
    cd OTHER && PYTHONPATH=THIS THIS/.venv/bin/python THIS/tests/hostile_limits_report.py
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests import hostile_measure as measure
from tests.fleet_harness import Fleet, descendants, process_table
from tests.hostile_inputs import put
from tests.hostile_measure import Row
from tests.limits_inputs import blocky_jpeg, flat_png, many_frames_gif, sub_block_gif

JOB_TIMEOUT = 150.0
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited: its time is no longer counted
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _cpu(fleet: Fleet) -> dict[int, float]:
    """CPU seconds so far of the gateway (key 0) and of each cpu pool process."""
    table = process_table()
    pool = [p for p in descendants(fleet.child.pid, table) if "--pool cpu" in table[p][1]]
    return {0: _cpu_seconds(fleet.gateway_pid()), **{p: _cpu_seconds(p) for p in pool}}


def _spent(before: dict[int, float], after: dict[int, float]) -> tuple[float, float]:
    """(gateway, cpu pool) CPU seconds between two readings; a pool child recycled in
    between takes its time with it (the pool figure is then a lower bound)."""
    pool = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items() if pid != 0)
    return after[0] - before[0], pool


def job_attack(
    key: str, build: Callable[[], bytes], body: dict
) -> Callable[[Fleet, httpx.Client, Row], None]:
    """Put the input, run the job to its end; the CPU it cost goes into the row."""

    def attack(fleet: Fleet, client: httpx.Client, row: Row) -> None:
        data = build()
        put(client, key, data)
        row.details.append(f"input {len(data):,} bytes")
        before = _cpu(fleet)
        row.run(client, body, JOB_TIMEOUT)
        gateway, pool = _spent(before, _cpu(fleet))
        row.details.append(f"CPU: gateway {gateway:.2f} s, cpu pool {pool:.2f} s")

    return attack


def served_headers(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    """An uploaded HTML page fetched back: what a browser would be told to do with it."""
    put(client, "page.html", b"<html><script>fetch('/v1/usage')</script></html>")
    response = client.get("/v1/objects/page.html")
    wanted = ("content-type", "x-content-type-options", "content-security-policy")
    told = {name: response.headers.get(name, "-") for name in (*wanted, "content-disposition")}
    row.outcome = f"HTTP {response.status_code}; " + "; ".join(f"{k}: {v}" for k, v in told.items())


ATTACKS: list[tuple[str, Callable[[Fleet, httpx.Client, Row], None]]] = [
    (
        "25.6a grayscale page 299999 (the last) of a 6.9 MB GIF of 300,000 1x1 frames",
        job_attack(
            "seek.gif",
            lambda: many_frames_gif(300_000),
            {"operation": "grayscale", "input": "seek.gif", "page": 299_999},
        ),
    ),
    (
        "25.6b grayscale page 999 of 1000 1x1 frames on a 100 MP canvas",
        job_attack(
            "canvas.gif",
            lambda: many_frames_gif(1000, 10_000, 10_000),
            {"operation": "grayscale", "input": "canvas.gif", "page": 999},
        ),
    ),
    (
        "25.6c dominant-color of a 100 MP flat PNG",
        job_attack(
            "flat.png",
            lambda: flat_png(10_000, 10_000),
            {"operation": "dominant-color", "input": "flat.png"},
        ),
    ),
    (
        "25.6d placeholder of a 100 MP flat PNG",
        job_attack(
            "flat.png",
            lambda: flat_png(10_000, 10_000),
            {"operation": "placeholder", "input": "flat.png"},
        ),
    ),
    (
        "25.6d2 dominant-color of a 100 MP JPEG (26 MB)",
        job_attack(
            "photo.jpg",
            lambda: blocky_jpeg(10_000),
            {"operation": "dominant-color", "input": "photo.jpg"},
        ),
    ),
    (
        "25.6e metadata of a 52 MB GIF of 26M one-byte sub-blocks",
        job_attack(
            "blocks.gif",
            lambda: sub_block_gif(26_000_000),
            {"operation": "metadata", "input": "blocks.gif"},
        ),
    ),
    ("25.6f an uploaded HTML page fetched from /v1/objects", served_headers),
]


def main() -> int:
    notes = [f"fleet code: the checkout in {os.getcwd()}"]
    return measure.replay(
        ATTACKS, {"FLEET_CPU_CONCURRENCY": "1"}, 20 * 60, JOB_TIMEOUT, notes=notes
    )


if __name__ == "__main__":
    sys.exit(main())
