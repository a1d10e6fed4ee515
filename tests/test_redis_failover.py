"""Redis Sentinel: the fleet on a primary, a replica and three sentinels (loopback processes,
no Docker), its primary SIGKILLed under a stream of submissions. After the failover the
fleet carries on: every accepted job ends, exactly once, and is charged at most once; the
books reconcile. The test prints the failover pause it measured.

With FLEET_REDIS_MIN_REPLICAS=1 (the Sentinel default) a job is accepted (202) only once a
replica holds it, so the promoted replica has every accepted job. The promoted replica has
no replica of its own until the killed primary comes back, and until then the gateway
answers 503: the test brings the killed node back as a replica of the new master as soon as
the sentinels have promoted, as a supervisor (or an operator) would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import redis

from billing.ledger import Ledger
from imagefleet import procs
from imagefleet.redis_conn import connect
from jobs.store import JobStore
from tests import images
from tests.fleet_harness import Fleet, start_fleet
from tests.sentinel_harness import Sentinels, needs_sentinel

JOBS = 150
KILL_AFTER = 40  # accepted jobs before the primary is killed
SUBMITTERS = 4


@dataclass
class Submissions:
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    replies: dict[str, set[str]] = field(default_factory=dict)  # key -> job ids seen in 202s
    accepted_at: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    refused: Counter[str] = field(default_factory=Counter)  # 503s, connection errors
    unexpected: list[str] = field(default_factory=list)  # anything but 503 UNAVAILABLE
    lock: threading.Lock = field(default_factory=threading.Lock)
    kill_now: threading.Event = field(default_factory=threading.Event)


def _submit_all(fleet: Fleet, keys: list[str], log: Submissions, body: dict) -> None:
    with fleet.client() as client:
        for key in keys:
            deadline = time.monotonic() + 120
            while True:
                sent = time.monotonic()
                try:
                    reply = client.post(
                        "/v1/jobs", json=body, headers={"Idempotency-Key": key}, timeout=15
                    )
                except httpx.HTTPError as exc:
                    with log.lock:
                        log.refused[type(exc).__name__] += 1
                else:
                    if reply.status_code == 202:
                        with log.lock:
                            log.accepted[key] = reply.json()["id"]
                            log.replies.setdefault(key, set()).add(reply.json()["id"])
                            log.accepted_at.append((sent, time.monotonic()))
                            if len(log.accepted) >= KILL_AFTER:
                                log.kill_now.set()
                        break
                    with log.lock:
                        log.refused[reply.json()["error"]["message"][:40]] += 1
                        if reply.status_code != 503 or reply.json()["error"]["code"] != (
                            "UNAVAILABLE"
                        ):
                            log.unexpected.append(f"{reply.status_code} {reply.text}")
                if time.monotonic() > deadline:
                    log.unexpected.append(f"{key} refused for 120 s")
                    return
                time.sleep(0.05)  # Retry-After says 1-2 s; shorter, to time the pause


def _wait_for_jobs(jobs: JobStore, job_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for job_id in job_ids:
            try:
                record = jobs.get(job_id)
            except redis.ConnectionError:
                record = None
            states[job_id] = record.status.value if record else "missing"
        pending = [j for j, s in states.items() if s not in ("succeeded", "failed", "canceled")]
        if not pending or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


@needs_sentinel
def test_the_fleet_carries_on_through_a_primary_failover(
    sentinels: Sentinels, tmp_path: Path
) -> None:
    fleet = start_fleet(
        tmp_path / "var",
        {
            "FLEET_REDIS_URL": sentinels.url,
            "FLEET_BROKER_URL": "",  # broker: the same URL
            "FLEET_REQUEUE_AFTER_SECONDS": "5",
            "FLEET_SWEEP_INTERVAL": "1",
        },
    )
    try:
        client = connect(sentinels.url, socket_timeout=5)
        jobs, ledger = JobStore(client, 3600), Ledger(client)
        with fleet.client() as http:
            http.put(
                "/v1/objects/in.png", content=images.encode(np.full((48, 64, 3), 90, np.uint8))
            ).raise_for_status()
            balance_before = http.get("/v1/usage").json()["balance_micros"]
        captures_before = sum(1 for e in ledger.entries("dev") if e["kind"] == "capture")
        assert captures_before == 0

        log = Submissions()
        keys = [f"failover-{i}" for i in range(JOBS)]
        bodies = [
            {"operation": "grayscale", "input": "in.png"},
            {"operation": "metadata", "input": "in.png"},
        ]
        threads = [
            threading.Thread(
                target=_submit_all,
                daemon=True,
                args=(fleet, keys[i::SUBMITTERS], log, bodies[i % 2]),
            )
            for i in range(SUBMITTERS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        assert log.kill_now.wait(60), "the first jobs were not accepted"

        primary, replica = sentinels.redis_ports
        assert sentinels.master_port() == primary
        os.kill(sentinels.nodes[primary].pid, signal.SIGKILL)
        killed = time.monotonic()
        accepted_before_kill = len(log.accepted)
        # The pause, timed by a client that starts submitting now (the stream's clients may
        # be held up by keys whose claim, but not job, reached the replica).
        prober = threading.Thread(
            target=_submit_all, daemon=True, args=(fleet, ["failover-probe"], log, bodies[0])
        )
        prober.start()
        threads.append(prober)
        procs.wait_until(lambda: sentinels.master_port() == replica, 30, "the failover")
        promoted = time.monotonic()
        sentinels.nodes[primary].stop(grace=0)  # reap it
        restarted = time.monotonic()
        sentinels.start_node(primary, replica_of=replica)  # back, as the new replica
        for thread in threads:
            thread.join(timeout=240)
        assert not any(t.is_alive() for t in threads), "submissions did not finish"
        assert not log.unexpected, log.unexpected
        submitted = time.monotonic()

        # Every accepted job ends, once, and is charged at most once.
        assert set(log.accepted) == {*keys, "failover-probe"}
        assert all(len(ids) == 1 for ids in log.replies.values()), "a key made two jobs"
        job_ids = list(log.accepted.values())
        states = _wait_for_jobs(jobs, job_ids, 180)
        ended = time.monotonic()
        assert Counter(states.values()) == Counter({"succeeded": JOBS + 1}), Counter(
            states.values()
        )
        procs.wait_until(lambda: not ledger.open_holds("dev"), 60, "orphaned holds released")
        entries = ledger.entries("dev")
        captures = Counter(e["job"] for e in entries if e["kind"] == "capture")
        assert set(captures) == set(job_ids), "charges and accepted jobs differ"
        assert max(captures.values()) == 1, "a job was charged twice"
        charged = sum(int(e["amount"]) for e in entries if e["kind"] == "capture")
        with fleet.client() as http:
            balance_after = http.get("/v1/usage").json()["balance_micros"]
        assert balance_before - balance_after == charged
        reconcile = subprocess.run(
            [sys.executable, "-m", "imagefleet.cli", "billing", "reconcile"],
            env=dict(os.environ, FLEET_REDIS_URL=sentinels.url, FLEET_VAR_DIR=str(fleet.var_dir)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr

        first_after = min(answered for sent, answered in log.accepted_at if sent > killed)
        print(
            f"\nsentinel failover: {JOBS + 1} jobs ({accepted_before_kill} accepted before"
            f" the kill), {sum(log.refused.values())} refusals retried {dict(log.refused)};"
            f" sentinels name the new master {promoted - killed:.2f} s after the kill"
            f" (polled every 0.1 s), old primary restarted as its replica at"
            f" {restarted - killed:.2f} s; failover pause (kill -> first 202)"
            f" {first_after - killed:.2f} s; {len(captures)} captures, one per job;"
            f" submissions {submitted - started:.1f} s, all ended {ended - started:.1f} s"
        )
        client.close()
    finally:
        fleet.stop()
