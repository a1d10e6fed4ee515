"""The one Celery task: run a job by id (tasks carry ids, never image bytes)."""

from __future__ import annotations

import sys
from functools import cache

import redis
from celery.signals import worker_process_shutdown

from billing.ledger import Ledger
from imagefleet.settings import settings
from jobs.store import JobStore
from storage import ObjectStore, open_store
from worker import runner, webhook_delivery
from worker.celery_app import DELIVER_WEBHOOK, RUN_JOB, app


@cache
def _connections() -> tuple[JobStore, ObjectStore, Ledger]:
    # Built lazily in each pool child, after the fork.
    cfg = settings()
    client = redis.Redis.from_url(cfg.redis_url)
    return JobStore(client, cfg.job_ttl_seconds), open_store(cfg.storage_url), Ledger(client)


@worker_process_shutdown.connect
def _close_browser(**_: object) -> None:
    """A render child closes its Chromium when the pool stops it (no stray browsers)."""
    module = sys.modules.get("worker.ops.from_html")
    if module is not None:
        module.shutdown()


@app.task(name=DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int = 0) -> None:
    jobs, _, _ = _connections()
    webhook_delivery.deliver(job_id, attempt, jobs, settings())


@app.task(name=RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> None:
    jobs, objects, ledger = _connections()
    runner.run_job(job_id, jobs, objects, settings(), ledger)
