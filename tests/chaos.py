"""Chaos run: mixed jobs through a real fleet while worker children are SIGKILLed and Redis
restarts once; then every promise is checked from the outside.

    python -m tests.chaos --jobs 1000       (`make chaos`)

Loopback only, bounded in time. The fleet, its Redis and the webhook receiver are started
here on free ports and stopped by pid. Exit status 0 only when nothing was lost.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from PIL import Image

from billing.accounts import Accounts
from imagefleet import procs
from tests import images
from tests.chaos_checks import Report, check
from tests.fleet_harness import Fleet, process_table, start_fleet
from tests.fleet_helpers import wait_all_ended
from tests.receiver import Receiver

KILLED_POOLS = ("cpu", "ocr")  # webhooks and payments run threads: no children

# (weight, job body without webhook, what a valid output must measure: (w, h) or None)
JOB_MIX: list[tuple[int, dict[str, Any], tuple[int, int] | None]] = [
    (4, {"operation": "resize", "input": "photo.jpg", "width": 200}, (200, 150)),
    (
        2,
        {
            "operation": "crop",
            "input": "photo.jpg",
            "width": 120,
            "height": 90,
            "gravity": "entropy",
        },
        (120, 90),
    ),
    (2, {"operation": "convert", "input": "logo.png", "format": "webp"}, (300, 200)),
    (2, {"operation": "blur", "input": "photo.jpg", "sigma": 2}, (640, 480)),
    (2, {"operation": "grayscale", "input": "logo.png"}, (300, 200)),
    (1, {"operation": "rotate", "input": "photo.jpg", "angle": 90}, (480, 640)),
    (
        2,
        {
            "operation": "pipeline",
            "input": "photo.jpg",
            "steps": [{"operation": "resize", "width": 320}, {"operation": "sharpen"}],
        },
        (320, 240),
    ),
    (1, {"operation": "dominant-color", "input": "logo.png"}, None),
    (1, {"operation": "metadata", "input": "photo.jpg"}, None),
    (1, {"operation": "ocr", "input": "text.png"}, None),
    (1, {"operation": "grayscale", "input": "corrupt.jpg"}, None),  # fails: unreadable
]


def _inputs() -> dict[str, bytes]:
    text = Image.new("L", (360, 60), 255)
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype("DejaVuSans.ttf", 28)
    ImageDraw.Draw(text).text((10, 12), "chaos monkey 42", fill=0, font=font)
    buf = io.BytesIO()
    text.save(buf, "PNG")
    photo = images.encode(images.photo_like(640, 480, seed=7), "JPEG", quality=85)
    logo = np.zeros((200, 300, 4), np.uint8)
    logo[40:160, 60:240] = (200, 30, 30, 255)
    return {
        "photo.jpg": photo,
        "logo.png": images.encode(logo),
        "text.png": buf.getvalue(),
        "corrupt.jpg": photo[:200] + bytes(random.Random(1).randbytes(3000)),
    }


class Killer(threading.Thread):
    """SIGKILLs one random pool child of the fleet's workers every `every` seconds."""

    def __init__(self, fleet_pid: int, every: float, report: Report, seed: int) -> None:
        super().__init__(daemon=True)
        self.fleet_pid, self.every, self.report = fleet_pid, every, report
        self.stopped = threading.Event()
        self.rng = random.Random(seed)

    def victims(self) -> list[int]:
        table = process_table()
        mains = {
            pid
            for pid, (parent, args) in table.items()
            if parent == self.fleet_pid and any(f"--pool {pool}" in args for pool in KILLED_POOLS)
        }
        return [pid for pid, (parent, _) in table.items() if parent in mains]

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            victims = self.victims()
            if victims:
                try:
                    os.kill(self.rng.choice(victims), signal.SIGKILL)
                    self.report.kills += 1
                except ProcessLookupError:
                    pass


def _submit(
    client: httpx.Client, body: dict[str, Any], report: Report, patience: float = 180
) -> str | None:
    """Submit like a careful client: one Idempotency-Key, retried on 5xx and network errors."""
    key = str(uuid.uuid4())
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code in (200, 202):
            return response.json()["id"]
        if response is not None and response.status_code < 500 and response.status_code != 429:
            report.problem(f"submission refused {response.status_code}: {response.text[:200]}")
            return None
        report.submit_retries += 1
        time.sleep(0.5)
    report.problem("submission never accepted")
    return None


def run(
    jobs: int,
    kill_every: float,
    workdir: Path,
    submitters: int = 4,
    seed: int = 42,
    say: Callable[[str], None] = print,
) -> Report:
    report, started = Report(), time.monotonic()
    redis_port = procs.free_port()
    redis_argv = procs.redis_argv(redis_port, workdir / "redis")
    redis_children = [_start_redis(redis_argv, workdir)]
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    fleet: Fleet | None = None
    receiver: Receiver | None = None
    killer: Killer | None = None
    try:
        fleet = start_fleet(
            workdir / "var",
            {
                "FLEET_REDIS_URL": redis_url,
                "FLEET_RATE_LIMIT": "0",
                "FLEET_SWEEP_INTERVAL": "2",
                "FLEET_REQUEUE_AFTER_SECONDS": "20",
                "FLEET_MAX_ATTEMPTS": "20",
            },
        )
        client = redis.Redis.from_url(redis_url)
        account = Accounts(client).require("dev")
        credit = account.balance_micros
        receiver = Receiver(account.webhook_secret)
        rng = random.Random(seed)
        weights = [w for w, _, _ in JOB_MIX]
        plan = [rng.choices(JOB_MIX, weights)[0] for _ in range(jobs)]
        expected: dict[str, tuple[int, int] | None] = {}
        with fleet.client() as http:
            for name, data in _inputs().items():
                http.put(f"/v1/objects/{name}", content=data).raise_for_status()
            killer = Killer(fleet.child.pid, kill_every, report, seed)
            killer.start()
            restart_at = int(jobs * 0.4)
            say(
                f"chaos: {jobs} jobs, a SIGKILL every {kill_every:g} s, Redis restart after"
                f" {restart_at} submissions"
            )

            def one(index: int) -> None:
                _, body, size = plan[index]
                if index == restart_at:
                    say("chaos: restarting Redis")
                    redis_children[-1].stop()  # SIGTERM: Redis writes its AOF and exits
                    redis_children.append(_start_redis(redis_argv, workdir))
                    report.redis_restarts += 1
                report.submitted += 1
                job_id = _submit(http, {**body, "webhook_url": receiver.url}, report)
                if job_id is not None:
                    expected[job_id] = size
                    report.accepted += 1

            with ThreadPoolExecutor(submitters) as pool:
                list(pool.map(one, range(jobs)))
            say(f"chaos: {report.accepted} accepted; waiting for every job to end")
            ended = wait_all_ended(
                http, list(expected), timeout=120 + jobs * 0.5, webhooks_settled=True
            )
            killer.stopped.set()
            for job_id in expected:
                if job_id not in ended:
                    job = http.get(f"/v1/jobs/{job_id}").json()
                    report.problem(
                        f"{job_id} never ended: {job.get('status')}"
                        f" webhook {job.get('webhook', {}).get('state')}"
                    )
            time.sleep(1)  # late duplicate webhook deliveries are still counted
            log = fleet.log_file.read_text(errors="replace")
            report.fleet_restarts = log.count("; restarting it")
            report.sweeper_resends = log.count("sending it again")
            check(http, client, ended, expected, receiver, report, credit)
    finally:
        if killer is not None:
            killer.stopped.set()
        if receiver is not None:
            receiver.server.shutdown()
        if fleet is not None:
            fleet.stop()
        redis_children[-1].stop()
        report.seconds = time.monotonic() - started
    return report


def _start_redis(argv: list[str], workdir: Path) -> procs.Child:
    child = procs.spawn("redis", argv, log_file=workdir / "redis.log")
    port = int(argv[argv.index("--port") + 1])
    procs.wait_until(lambda: procs.port_open(port), 20, "redis")
    return child


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=42, help="job mix and kill choices")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imagefleet-chaos-"))
    report = run(args.jobs, args.kill_every, workdir, seed=args.seed)
    print(report.summary())
    print(f"(logs in {workdir})")
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
