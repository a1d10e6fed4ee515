"""Load run: sustained submissions against a real fleet whose queue limit is low, to show
backpressure (503 with Retry-After) instead of a backlog that grows without bound.

    python -m tests.load --seconds 60       (`make load`)

Loopback only; the fleet is started here on free ports and stopped by pid. Prints
throughput, latency percentiles, answers by status, and the deepest queue seen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests import images
from tests.fleet_harness import start_fleet

JOB = {"operation": "resize", "input": "load.jpg", "width": 160}


@dataclass
class LoadReport:
    seconds: float
    queue_limit: int
    answers: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    deepest_queue: int = 0
    accepted_ids: list[str] = field(default_factory=list)
    unended: int = 0
    missing_retry_after: int = 0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def errors(self) -> int:
        """Answers that are neither accepted nor the documented push-back."""
        return sum(n for answer, n in self.answers.items() if answer not in ("202", "503"))

    def summary(self) -> str:
        total = sum(self.answers.values())
        return "\n".join(
            [
                f"{total} submissions in {self.seconds:.0f} s ({total / self.seconds:.0f}/s);"
                f" accepted {self.answers['202']} ({self.answers['202'] / self.seconds:.0f}/s),"
                f" pushed back 503 {self.answers['503']}, other answers or errors {self.errors}"
                + (f" {dict(self.answers)}" if self.errors else ""),
                f"latency p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms,"
                f" max {max(self.latencies_ms, default=0):.1f} ms",
                f"deepest cpu queue {self.deepest_queue} (limit {self.queue_limit});"
                f" 503s without Retry-After {self.missing_retry_after}",
                f"accepted jobs that never ended: {self.unended}",
            ]
        )


def run(seconds: float, clients: int, queue_limit: int, workdir: Path) -> LoadReport:
    report = LoadReport(seconds, queue_limit)
    fleet = start_fleet(
        workdir / "var",
        {
            "FLEET_MAX_QUEUE_DEPTH": str(queue_limit),
            "FLEET_RATE_LIMIT": "0",
            "FLEET_LOG_LEVEL": "WARNING",
        },
    )
    lock, stop = threading.Lock(), threading.Event()
    try:
        photo = images.encode(images.photo_like(800, 600, seed=1), "JPEG", quality=85)
        with fleet.client() as http:
            http.put("/v1/objects/load.jpg", content=photo).raise_for_status()
        queues = redis.Redis.from_url(fleet.redis_url)

        def submitter() -> None:
            with fleet.client() as http:
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        response = http.post("/v1/jobs", json=JOB)
                        answer = str(response.status_code)
                    except httpx.HTTPError as exc:
                        response, answer = None, type(exc).__name__
                    elapsed = (time.perf_counter() - started) * 1000
                    with lock:
                        report.answers[answer] += 1
                        report.latencies_ms.append(elapsed)
                        if answer == "202" and response is not None:
                            report.accepted_ids.append(response.json()["id"])
                        if (
                            answer == "503"
                            and response is not None
                            and "retry-after" not in response.headers
                        ):
                            report.missing_retry_after += 1
                    if answer == "503":
                        time.sleep(0.05)  # an impatient client: retries well before Retry-After

        def sampler() -> None:
            while not stop.wait(0.2):
                report.deepest_queue = max(report.deepest_queue, int(queues.llen("cpu")))

        threads = [threading.Thread(target=submitter) for _ in range(clients)]
        threads.append(threading.Thread(target=sampler))
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        with fleet.client() as http:
            deadline = time.monotonic() + 120 + len(report.accepted_ids) / 20
            pending = list(report.accepted_ids)
            while pending and time.monotonic() < deadline:
                pending = [
                    j
                    for j in pending
                    if http.get(f"/v1/jobs/{j}").json()["status"]
                    not in ("succeeded", "failed", "canceled")
                ]
                time.sleep(0.5)
            report.unended = len(pending)
    finally:
        fleet.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queue-limit", type=int, default=200, help="FLEET_MAX_QUEUE_DEPTH")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="imagefleet-load-"))
    report = run(args.seconds, args.clients, args.queue_limit, workdir)
    print(report.summary())
    bounded = report.deepest_queue <= args.queue_limit + args.clients
    return 0 if bounded and not report.errors and not report.unended else 1


if __name__ == "__main__":
    sys.exit(main())
