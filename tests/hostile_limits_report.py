"""Issue 25's "smaller" attacks as rows of tests/hostile_report.py (ATTACKS), each with the
CPU seconds the gateway and the cpu pool spent on it in its details. Run alone, against
this checkout or another one's code (the fleet runs `--code DIR` on its PYTHONPATH; the
attacks and the measuring stay this checkout's), for before/after figures:

    .venv/bin/python -m tests.hostile_limits_report [--code /path/to/other/checkout]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from tests import hostile_measure as measure
from tests.fleet_harness import Fleet, descendants, process_table
from tests.hostile_inputs import put
from tests.hostile_measure import Row
from tests.limits_inputs import flat_png, many_frames_gif, sub_block_gif

JOB_TIMEOUT = 150.0
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited: its time is no longer counted
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _cpu(fleet: Fleet) -> tuple[float, float]:
    """CPU seconds so far of the gateway and of the cpu pool's processes."""
    table = process_table()
    pool = [p for p in descendants(fleet.child.pid, table) if "--pool cpu" in table[p][1]]
    return _cpu_seconds(fleet.gateway_pid()), sum(_cpu_seconds(p) for p in pool)


def job_attack(
    key: str, build: Callable[[], bytes], body: dict
) -> Callable[[Fleet, httpx.Client, Row], None]:
    """Put the input, run the job to its end; the CPU it cost goes into the row."""

    def attack(fleet: Fleet, client: httpx.Client, row: Row) -> None:
        data = build()
        put(client, key, data)
        row.details.append(f"input {len(data):,} bytes")
        gateway, pool = _cpu(fleet)
        row.run(client, body, JOB_TIMEOUT)
        gateway_after, pool_after = _cpu(fleet)
        row.details.append(
            f"CPU: gateway {gateway_after - gateway:.2f} s, cpu pool {pool_after - pool:.2f} s"
        )

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
        "25a. grayscale page 300000 of a 6.9 MB GIF of 300,000 1x1 frames",
        job_attack(
            "seek.gif",
            lambda: many_frames_gif(300_000),
            {"operation": "grayscale", "input": "seek.gif", "page": 300_000},
        ),
    ),
    (
        "25b. grayscale page 999 of 1000 1x1 frames on a 100 MP canvas",
        job_attack(
            "canvas.gif",
            lambda: many_frames_gif(1000, 10_000, 10_000),
            {"operation": "grayscale", "input": "canvas.gif", "page": 999},
        ),
    ),
    (
        "25c. dominant-color of a 100 MP flat PNG",
        job_attack(
            "flat.png",
            lambda: flat_png(10_000, 10_000),
            {"operation": "dominant-color", "input": "flat.png"},
        ),
    ),
    (
        "25d. placeholder of a 100 MP flat PNG",
        job_attack(
            "flat.png",
            lambda: flat_png(10_000, 10_000),
            {"operation": "placeholder", "input": "flat.png"},
        ),
    ),
    (
        "25e. metadata of a 52 MB GIF of 26M one-byte sub-blocks",
        job_attack(
            "blocks.gif",
            lambda: sub_block_gif(26_000_000),
            {"operation": "metadata", "input": "blocks.gif"},
        ),
    ),
    ("25f. an uploaded HTML page fetched from /v1/objects", served_headers),
]


def main() -> int:
    code = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else None
    env = {"FLEET_CPU_CONCURRENCY": "1", **({"PYTHONPATH": code} if code else {})}
    rows: list[Row] = []
    notes: list[str] = [f"fleet code: {code or 'this checkout'}"]
    settings: dict[str, str] = {}
    try:
        with (
            measure.default_fleet(env, 20 * 60, False) as (fleet, settings),
            fleet.client() as client,
        ):
            client.timeout = httpx.Timeout(JOB_TIMEOUT)
            for name, attack in ATTACKS:
                rows.append(Row(name))
                notes += rows[-1].measure(fleet, partial(attack, fleet, client))
    finally:
        if rows:
            measure.print_report(rows, settings, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
