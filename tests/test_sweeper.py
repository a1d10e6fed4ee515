"""Lost work comes back: the sweeper resends jobs and webhooks whose message is gone and
releases orphaned holds; `imagefleet up` restarts a worker that died. A real fleet with a
short FLEET_REQUEUE_AFTER_SECONDS, so each loss is found in seconds, not minutes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

from billing.accounts import Accounts
from billing.ledger import Ledger
from imagefleet.dispatch import CeleryDispatch
from imagefleet.settings import load_settings
from jobs import lifecycle
from jobs.lifecycle import Transition
from jobs.records import JobBilling, JobError, JobRecord, JobStatus, new_job_id, now
from jobs.store import JobStore
from jobs.tone import GrayscaleJob
from tests import images
from tests.fleet_harness import Fleet, process_table, start_fleet, wait_for_job
from tests.receiver import Receiver
from worker import lease, sweeper


class SentJobs(CeleryDispatch):
    """Dispatch that notes the jobs it would send (this test's Redis has no workers)."""

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    def job(self, job_id: str, operation: str) -> None:
        self.sent.append(job_id)


pytestmark = pytest.mark.fleet  # starts its own servers


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(
        tmp_path_factory.mktemp("sweeping") / "var",
        {
            "FLEET_REQUEUE_AFTER_SECONDS": "1",
            "FLEET_SWEEP_INTERVAL": "0.3",
            "FLEET_SOFT_TIME_LIMIT": "5",
            "FLEET_HARD_TIME_LIMIT": "10",
        },
    )
    with fleet.client() as client:
        client.put(
            "/v1/objects/in.png", content=images.encode(images.photo_like(64, 48))
        ).raise_for_status()
    yield fleet
    fleet.stop()


def _lost_job(
    jobs: JobStore,
    ledger: Ledger,
    status: JobStatus = JobStatus.QUEUED,
    webhook_url: str | None = None,
) -> str:
    """A job recorded and held exactly as the gateway does, whose message never arrives."""
    job_id, created = new_job_id(), now()
    spec = GrayscaleJob(input="in.png", webhook_url=webhook_url)
    assert ledger.hold("dev", job_id, 300, "grayscale", 0) is None
    jobs.create(
        JobRecord(
            id=job_id,
            tenant="dev",
            operation="grayscale",
            status=status,
            spec=spec,
            created_at=created,
            updated_at=created,
            billing=JobBilling(megapixels=64 * 48 / 1e6, quoted_micros=300),
            webhook=lifecycle.new_webhook(webhook_url),
        )
    )
    return job_id


def _running(job_id: str, started: datetime, **fields: Any) -> JobRecord:
    """A grayscale job recorded running since `started`, on its first attempt."""
    return JobRecord(
        id=job_id,
        tenant="dev",
        operation="grayscale",
        status=JobStatus.RUNNING,
        spec=GrayscaleJob(input="in.png"),
        created_at=started,
        updated_at=started,
        started_at=started,
        attempts=1,
        **fields,
    )


def _parts(fleet: Fleet) -> tuple[JobStore, Ledger, redis.Redis]:
    client = redis.Redis.from_url(fleet.redis_url)
    return JobStore(client, 600), Ledger(client), client


def test_a_job_whose_message_was_lost_is_sent_again_and_charged_once(fleet: Fleet) -> None:
    jobs, ledger, _ = _parts(fleet)
    job_id = _lost_job(jobs, ledger)
    with fleet.client() as client:
        job = wait_for_job(client, job_id, timeout=30)
        assert job["status"] == "succeeded", job
        charged = job["billing"]["charged_micros"]
        assert 0 < charged <= 300
        assert images.decode(client.get(f"/v1/objects/{job['result']['output']}").content).shape[
            :2
        ] == (48, 64)
    moves = [(e["kind"], int(e["amount"])) for e in ledger.entries("dev") if e["job"] == job_id]
    assert moves[:2] == [("hold", 300), ("capture", charged)]
    assert [kind for kind, _ in moves[2:]] in ([], ["release"])  # the rest of the hold
    assert "sending it again" in fleet.log_file.read_text()


def test_a_webhook_lost_after_the_job_ended_is_delivered(fleet: Fleet) -> None:
    jobs, ledger, client = _parts(fleet)
    receiver = Receiver(Accounts(client).require("dev").webhook_secret)
    try:
        job_id = _lost_job(jobs, ledger, webhook_url=receiver.url)

        def end(record: JobRecord) -> None:  # ended, but its worker died before notifying
            record.status, record.finished_at = JobStatus.FAILED, now()

        ledger.release("dev", job_id, "grayscale")
        assert jobs.apply(job_id, Transition("ended, unnotified", (JobStatus.QUEUED,), end))
        calls = receiver.wait_for(1, timeout=30)
        assert len(calls) == 1 and calls[0]["valid"]
        assert calls[0]["headers"]["webhook-id"] == f"msg_{job_id}_failed"
    finally:
        receiver.server.shutdown()


def test_a_hold_whose_job_was_never_recorded_is_released(fleet: Fleet) -> None:
    _, ledger, client = _parts(fleet)
    before = Accounts(client).require("dev").held_micros
    # As if a gateway took the hold, then lost Redis before recording the job, a minute ago.
    stamp = int((now() - timedelta(minutes=1)).timestamp() * 1000)
    orphan = f"job_{stamp:012x}{'ab' * 10}"
    assert ledger.hold("dev", orphan, 777, "resize", 1.0) is None
    deadline = time.monotonic() + 20
    while orphan in ledger.open_holds("dev") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert orphan not in ledger.open_holds("dev")
    assert Accounts(client).require("dev").held_micros == before
    assert [e["kind"] for e in ledger.entries("dev") if e["job"] == orphan] == ["hold", "release"]


def test_a_charged_ending_whose_ender_died_before_the_ledger_is_captured(fleet: Fleet) -> None:
    """A cancel recorded (charged 450 of a 900 hold: docs/billing.md#endings) by a gateway
    that died before moving the money: the sweeper captures what the record says."""
    jobs, ledger, client = _parts(fleet)
    started = now() - timedelta(minutes=1)
    job_id = f"job_{int(started.timestamp() * 1000):012x}{'cd' * 10}"
    jobs.create(_running(job_id, started, billing=JobBilling(megapixels=3.0, quoted_micros=900)))
    assert ledger.hold("dev", job_id, 900, "grayscale", 3.0) is None
    jobs.apply(job_id, lifecycle.cancel(lambda record: 450))
    deadline = time.monotonic() + 20
    while job_id in ledger.open_holds("dev") and time.monotonic() < deadline:
        time.sleep(0.2)
    moved = [(e["kind"], e["amount"]) for e in ledger.entries("dev") if e["job"] == job_id]
    assert moved == [("hold", "900"), ("capture", "450"), ("release", "450")]
    assert ledger.captured("dev", job_id) == 450


def test_a_worker_killed_with_its_children_is_restarted_and_its_job_finishes(fleet: Fleet) -> None:
    big = images.encode(images.photo_like(3000, 2000, seed=5), "JPEG", quality=90)
    slow = {
        "operation": "pipeline",
        "input": "slow.jpg",
        "steps": [{"operation": "blur", "sigma": 30}] * 3,
    }
    with fleet.client() as client:
        client.put("/v1/objects/slow.jpg", content=big).raise_for_status()
        job_id = client.post("/v1/jobs", json=slow).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        [worker] = [
            pid
            for pid, (parent, args) in process_table().items()
            if parent == fleet.child.pid and "--pool cpu" in args
        ]
        os.killpg(worker, signal.SIGKILL)  # the worker and its pool, as if its machine died
        job = wait_for_job(client, job_id, timeout=90)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        after = client.post(
            "/v1/jobs?wait=30", json={"operation": "grayscale", "input": "in.png"}
        ).json()
        assert after["status"] == "succeeded"
    log = fleet.log_file.read_text()
    assert "worker-cpu exited with -9; restarting it" in log
    entries = Ledger(redis.Redis.from_url(fleet.redis_url)).entries("dev")
    assert [e["kind"] for e in entries if e["job"] == job_id] == ["hold", "capture"]


def test_a_running_job_whose_lease_expired_is_sent_again_at_the_next_pass(
    fleet: Fleet,
) -> None:
    # Another database of the fleet's Redis: the fleet's own sweeper does not look there.
    client = redis.Redis.from_url(fleet.redis_url.rsplit("/", 1)[0] + "/1")
    client.flushdb()
    jobs, ledger, sent = JobStore(client, 600), Ledger(client), list[str]()
    dispatch = SentJobs(sent)
    cfg = replace(load_settings(), requeue_after_seconds=300)
    started = now()
    dead, live, ended = (new_job_id() for _ in range(3))
    for job_id in (dead, live, ended):
        jobs.create(_running(job_id, started, task_id="first"))
        client.zadd(lease.INDEX, {job_id: time.time() - 1})  # due by the renewer's clock
    client.set(lease.key(live), 1, px=60_000)  # renewed all the same (a skewed clock)
    jobs.apply(ended, lifecycle.fail(JobError("TIMEOUT", "ended meanwhile")))

    swept = sweeper.sweep(jobs, ledger, Accounts(client), cfg, dispatch)
    assert sent == [dead] and (swept.requeued, swept.leases) == (1, 1)
    assert client.zscore(lease.INDEX, dead) is None  # the copy's lease takes its place
    assert client.zscore(lease.INDEX, ended) is None  # an ended job is forgotten
    assert client.zscore(lease.INDEX, live) is not None
    # Sent once: if that copy is lost too, the job is resent once it has been idle for
    # FLEET_REQUEUE_AFTER_SECONDS (its lease still gone), not at every pass.
    assert not sweeper.sweep(jobs, ledger, Accounts(client), cfg, dispatch) and sent == [dead]
    client.flushdb()
