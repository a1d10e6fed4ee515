"""The job runner's guarantees when a job is delivered again (acks_late redelivery).

Runs the real runner in-process against a real Redis (the test fleet's) and a real
directory store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
import redis

from billing.ledger import Ledger
from imagefleet.dispatch import time_limits
from imagefleet.settings import load_settings
from jobs import lifecycle
from jobs.crop import CropJob
from jobs.lifecycle import Transition
from jobs.pipeline import PipelineJob
from jobs.records import JobRecord, JobStatus, new_job_id, now
from jobs.spec import Rect
from jobs.store import JobStore
from storage import ObjectStore, open_store, tenant_key
from storage.local import DirectoryStore
from tests import images
from tests.fleet_harness import Fleet
from worker import lease
from worker.runner import run_job, time_out

Parts = tuple[JobStore, ObjectStore]


@pytest.fixture
def parts(dir_fleet: Fleet, tmp_path: Path) -> Iterator[Parts]:
    client = redis.Redis.from_url(dir_fleet.redis_url)
    store = open_store(f"file://{tmp_path / 'objects'}")
    store.put(tenant_key("t", "in.png"), images.encode(images.photo_like(40, 30)), "image/png")
    yield JobStore(client, 600), store
    client.close()


def _record(
    jobs: JobStore,
    status: JobStatus = JobStatus.QUEUED,
    attempts: int = 0,
    task_id: str | None = None,
    started_ago: float = 0.0,
) -> str:
    spec = CropJob(input="in.png", rect=Rect(0, 0, 8, 8), format="png")
    created = now()
    started = created - timedelta(seconds=started_ago) if status == JobStatus.RUNNING else None
    record = JobRecord(
        id=new_job_id(),
        tenant="t",
        operation="crop",
        status=status,
        spec=spec,
        created_at=created,
        updated_at=created,
        attempts=attempts,
        task_id=task_id,
        started_at=started,
    )
    jobs.create(record)
    return record.id


def test_a_second_delivery_of_a_finished_job_changes_nothing(parts: Parts) -> None:
    jobs, store = parts
    job_id = _record(jobs)
    cfg = load_settings()
    run_job(job_id, jobs, store, cfg)
    first = jobs.get(job_id)
    assert first is not None and first.status == JobStatus.SUCCEEDED and first.attempts == 1
    run_job(job_id, jobs, store, cfg)
    second = jobs.get(job_id)
    assert second == first


def test_attempts_past_the_cap_end_the_job_worker_lost(parts: Parts) -> None:
    jobs, store = parts
    cfg = replace(load_settings(), max_attempts=3)
    # As if three workers died while running it: still "running", 3 attempts made.
    job_id = _record(jobs, JobStatus.RUNNING, attempts=3)
    run_job(job_id, jobs, store, cfg)
    record = jobs.get(job_id)
    assert record is not None and record.status == JobStatus.FAILED
    assert record.error is not None and record.error.code == "WORKER_LOST"


def test_a_redelivered_running_job_under_the_cap_runs_again(parts: Parts) -> None:
    jobs, store = parts
    job_id = _record(jobs, JobStatus.RUNNING, attempts=1)
    run_job(job_id, jobs, store, load_settings())
    record = jobs.get(job_id)
    assert record is not None and record.status == JobStatus.SUCCEEDED and record.attempts == 2


def test_a_redelivered_message_reruns_but_a_duplicate_waits_for_the_owner(parts: Parts) -> None:
    jobs, store = parts
    cfg = load_settings()
    # The sweeper's copy while the first message's run is alive (its lease is renewed, even
    # long past the hard limit): dropped, nothing changes.
    _, hard = time_limits("crop", cfg)
    live = _record(jobs, JobStatus.RUNNING, attempts=1, task_id="first", started_ago=hard * 9)
    jobs.redis.set(lease.key(live), 1, px=60_000)
    run_job(live, jobs, store, cfg, task_id="copy")
    record = jobs.get(live)
    assert record is not None and record.status == JobStatus.RUNNING and record.attempts == 1
    # The same message again (its worker was killed, its lease not yet expired): runs.
    run_job(live, jobs, store, cfg, task_id="first")
    record = jobs.get(live)
    assert record is not None and record.status == JobStatus.SUCCEEDED and record.attempts == 2
    assert not jobs.redis.exists(lease.key(live))  # released by the run that ended it
    assert jobs.redis.zscore(lease.INDEX, live) is None
    # A copy once the owner's lease expired (its worker died a moment ago): takes over.
    dead = _record(jobs, JobStatus.RUNNING, attempts=1, task_id="first", started_ago=1)
    run_job(dead, jobs, store, cfg, task_id="copy")
    record = jobs.get(dead)
    assert record is not None and record.status == JobStatus.SUCCEEDED
    assert record.task_id == "copy" and record.attempts == 2


def test_a_lease_is_renewed_while_its_run_lasts_and_released_after(parts: Parts) -> None:
    jobs, _ = parts
    client, job_id = jobs.redis, new_job_id()
    with client.pipeline() as pipe:
        lease.grant(pipe, job_id, 1, 0.6)
        pipe.execute()
    with lease.Heartbeat(client, job_id, 1, 0.6) as beat:
        time.sleep(2)  # more than three terms
        assert client.get(lease.key(job_id)) == b"1" and not beat.lost
        assert client.pttl(lease.key(job_id)) > 0
        assert (client.zscore(lease.INDEX, job_id) or 0) > time.time()
    assert not client.exists(lease.key(job_id)) and client.zscore(lease.INDEX, job_id) is None
    time.sleep(0.5)  # the thread is gone: nothing renews or recreates the lease
    assert not client.exists(lease.key(job_id))
    assert not [t for t in threading.enumerate() if t.name == f"lease {job_id}"]


def test_a_run_whose_lease_was_taken_stops_and_leaves_the_new_owner_alone(parts: Parts) -> None:
    jobs, _ = parts
    client, job_id = jobs.redis, new_job_id()
    client.set(lease.key(job_id), 1, px=600)
    with lease.Heartbeat(client, job_id, 1, 0.6) as beat:
        client.set(lease.key(job_id), 2, px=60_000)  # a resent copy took the job
        time.sleep(0.5)
        assert beat.taken and beat.lost
    assert client.get(lease.key(job_id)) == b"2"  # the copy's lease is not released
    client.delete(lease.key(job_id))
    client.zrem(lease.INDEX, job_id)


def test_a_run_that_lost_its_job_to_a_copy_writes_nothing(parts: Parts) -> None:
    jobs, store = parts
    cfg = replace(load_settings(), lease_seconds=30)
    store.put(tenant_key("t", "big.png"), images.encode(images.photo_like(1500, 1000)), "image/png")
    steps = [{"operation": "blur", "sigma": 25}] * 10
    spec = msgspec.convert({"input": "big.png", "format": "png", "steps": steps}, PipelineJob)
    created = now()
    job_id = new_job_id()
    jobs.create(
        JobRecord(
            id=job_id,
            tenant="t",
            operation="pipeline",
            status=JobStatus.QUEUED,
            spec=spec,
            created_at=created,
            updated_at=created,
        )
    )
    run = threading.Thread(
        target=run_job, args=(job_id, jobs, store, cfg), kwargs={"task_id": "stalled"}
    )
    run.start()
    deadline = time.monotonic() + 20
    while (record := jobs.get(job_id)) is None or record.status is not JobStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def take(rec: JobRecord) -> None:  # as a copy does once the first run's lease expired
        rec.attempts, rec.task_id = 2, "copy"

    assert jobs.apply(job_id, Transition("a copy takes over", (JobStatus.RUNNING,), take))
    jobs.redis.set(lease.key(job_id), 2, px=60_000)
    run.join(60)
    record = jobs.get(job_id)
    assert record is not None and record.status is JobStatus.RUNNING  # the copy's to end
    assert record.attempts == 2 and record.result is None
    assert store.size(tenant_key("t", f"jobs/{job_id}/output.png")) is None
    assert jobs.redis.get(lease.key(job_id)) == b"2"
    jobs.apply(job_id, lifecycle.CANCEL)
    jobs.redis.delete(lease.key(job_id))
    jobs.redis.zrem(lease.INDEX, job_id)


def test_a_hard_limit_kill_ends_the_job_only_for_the_run_that_owns_it(parts: Parts) -> None:
    jobs, _ = parts
    ledger = Ledger(jobs.redis)
    job_id = _record(jobs, JobStatus.RUNNING, attempts=2, task_id="copy")
    time_out(
        job_id, jobs, ledger, load_settings(), task_id="stalled"
    )  # the run a copy took over from
    record = jobs.get(job_id)
    assert record is not None and record.status is JobStatus.RUNNING
    time_out(job_id, jobs, ledger, load_settings(), task_id="copy")
    record = jobs.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "TIMEOUT"


def test_a_canceled_job_is_never_run(parts: Parts) -> None:
    jobs, store = parts
    job_id = _record(jobs, JobStatus.CANCELED)
    run_job(job_id, jobs, store, load_settings())
    record = jobs.get(job_id)
    assert record is not None and record.status == JobStatus.CANCELED and record.result is None
    assert store.size(tenant_key("t", f"jobs/{job_id}/output.png")) is None


def test_an_input_deleted_after_submission_fails_cleanly(parts: Parts, tmp_path: Path) -> None:
    jobs, store = parts
    (tmp_path / "objects" / "tenants" / "t" / "in.png").unlink()
    job_id = _record(jobs)
    run_job(job_id, jobs, store, load_settings())
    record = jobs.get(job_id)
    assert record is not None and record.status == JobStatus.FAILED
    assert record.error is not None and record.error.code == "INPUT_NOT_FOUND"


class _CancelOnRead(DirectoryStore):
    """A real directory store; reading the job's input cancels the job (a cancel that lands
    a moment after the run started, before the record is read again between steps)."""

    def __init__(self, root: Path, jobs: JobStore) -> None:
        super().__init__(root)
        self.jobs, self.job_id = jobs, ""

    def get(self, key: str) -> bytes:
        assert self.jobs.apply(self.job_id, lifecycle.CANCEL) is not None
        return super().get(key)


def test_a_job_canceled_as_it_starts_writes_nothing(
    parts: Parts, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs, _ = parts
    store = _CancelOnRead(tmp_path / "objects", jobs)
    store.job_id = job_id = _record(jobs)
    with caplog.at_level(logging.INFO, logger="imagefleet.worker"):
        run_job(job_id, jobs, store, load_settings())
    assert "was canceled while running; stopped before writing anything" in caplog.text
    record = jobs.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELED and record.result is None
    assert store.size(tenant_key("t", f"jobs/{job_id}/output.png")) is None
