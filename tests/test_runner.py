"""The job runner's guarantees when a job is delivered again (acks_late redelivery).

Runs the real runner in-process against a real Redis (the test fleet's) and a real
directory store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from imagefleet.settings import load_settings
from jobs.crop import CropJob
from jobs.records import JobRecord, JobStatus, new_job_id, now
from jobs.spec import Rect
from jobs.store import JobStore
from storage import ObjectStore, open_store, tenant_key
from tests import images
from tests.fleet_harness import Fleet
from worker.celery_app import time_limits
from worker.runner import run_job

Parts = tuple[JobStore, ObjectStore]


@pytest.fixture
def parts(dir_fleet: Fleet, tmp_path: Path) -> Iterator[Parts]:
    client = redis.Redis.from_url(dir_fleet.redis_url)
    store = open_store(f"file://{tmp_path / 'objects'}")
    store.put(tenant_key("t", "in.png"), images.encode(images.photo_like(40, 30)), "image/png")
    yield JobStore(client, 600), store
    client.close()


def _record(jobs: JobStore, status: JobStatus = JobStatus.QUEUED, attempts: int = 0,
            task_id: str | None = None, started_ago: float = 0.0) -> str:
    spec = CropJob(input="in.png", rect=Rect(0, 0, 8, 8), format="png")
    created = now()
    started = created - timedelta(seconds=started_ago) if status == JobStatus.RUNNING else None
    record = JobRecord(id=new_job_id(), tenant="t", operation="crop", status=status, spec=spec,
                       created_at=created, updated_at=created, attempts=attempts,
                       task_id=task_id, started_at=started)
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


def test_a_redelivered_message_reruns_but_a_duplicate_waits_for_the_owner(
        parts: Parts) -> None:
    jobs, store = parts
    cfg = replace(load_settings(), requeue_after_seconds=60)
    # The sweeper's copy while the first message's run is alive: dropped, nothing changes.
    live = _record(jobs, JobStatus.RUNNING, attempts=1, task_id="first", started_ago=5)
    run_job(live, jobs, store, cfg, task_id="copy")
    record = jobs.get(live)
    assert record is not None and record.status == JobStatus.RUNNING and record.attempts == 1
    # The same message again (its worker was killed): runs.
    run_job(live, jobs, store, cfg, task_id="first")
    record = jobs.get(live)
    assert record is not None and record.status == JobStatus.SUCCEEDED and record.attempts == 2
    # A copy once the owner's run is past its hard limit and the grace: takes over.
    _, hard = time_limits("crop", cfg)
    dead = _record(jobs, JobStatus.RUNNING, attempts=1, task_id="first",
                   started_ago=hard + cfg.requeue_after_seconds + 5)
    run_job(dead, jobs, store, cfg, task_id="copy")
    record = jobs.get(dead)
    assert record is not None and record.status == JobStatus.SUCCEEDED
    assert record.task_id == "copy"


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
