"""The one Celery task: run a job by id (tasks carry ids, never image bytes)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from functools import cache, partial

import redis
from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, worker_process_init, worker_process_shutdown

from billing.ledger import Ledger
from imagefleet.dispatch import DELIVER_WEBHOOK, RUN_JOB, SETTLE_PAYMENT, app, dispatcher
from imagefleet.redis_conn import connect, replicated_within
from imagefleet.settings import settings
from jobs.batches import DELIVER_BATCH_WEBHOOK
from jobs.store import JobStore
from storage import ObjectStore, open_store
from worker import batch_webhook, renewer, runner, settlement, webhook_delivery


@cache
def _connections() -> tuple[JobStore, ObjectStore, Ledger]:
    # Built lazily in each pool child, after the fork.
    cfg = settings()
    client = connect(cfg.redis_url)  # plain Redis or the sentinels' master
    # A capture is answered only once a replica holds it (Sentinel): else the run retries.
    durable = partial(replicated_within, client, cfg.redis_min_replicas, cfg.redis_wait_ms, 120.0)
    ledger = Ledger(client, durable if cfg.redis_min_replicas > 0 else None)
    return JobStore(client, cfg.job_ttl_seconds), open_store(cfg.storage_url), ledger


log = logging.getLogger("imagefleet.worker")


@worker_process_init.connect
def _one_thread_per_process(**_: object) -> None:
    """Each pool child first forks its lease renewer (worker/renewer.py: before any thread
    or connection of its own exists). Pools run one process per core: OpenCV's own thread
    pool on top would put several threads on each core (the in-process benchmark runs
    single-threaded too)."""
    renewer.start(settings().redis_url)
    import cv2

    cv2.setNumThreads(1)


@worker_process_shutdown.connect
def _close_browser(**_: object) -> None:
    """A render child closes its Chromium when the pool stops it (no stray browsers), and
    every child ends its lease renewer."""
    module = sys.modules.get("worker.ops.from_html")
    if module is not None:
        module.shutdown()
    renewer.stop()


_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
REDIS_PATIENCE_SECONDS = 120


def _through_redis_outages(work: Callable[[], None], client: redis.Redis) -> None:
    """Run `work`; if Redis goes away meanwhile (a restart, a failover), wait for it and run
    again, rather than let Celery ack a task that could not record its job's state.
    Reruns are safe: state changes are guarded and charges are keyed by job."""
    deadline = time.monotonic() + REDIS_PATIENCE_SECONDS
    while True:
        try:
            work()
            return
        except _REDIS_DOWN:
            if time.monotonic() > deadline:
                raise
            log.warning("redis unavailable; waiting to finish the task")
            while time.monotonic() < deadline:
                time.sleep(1)
                try:
                    if client.ping():
                        break
                except _REDIS_DOWN:
                    continue


@app.task(name=DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int = 0) -> None:
    jobs, _, _ = _connections()
    cfg = settings()
    _through_redis_outages(
        lambda: webhook_delivery.deliver(job_id, attempt, jobs, cfg, dispatcher(cfg)), jobs.redis
    )


@app.task(name=DELIVER_BATCH_WEBHOOK, ignore_result=True)
def deliver_batch_webhook(batch_id: str, attempt: int = 0) -> None:
    jobs, _, _ = _connections()
    _through_redis_outages(
        lambda: batch_webhook.deliver_batch(batch_id, attempt, jobs.redis, settings()), jobs.redis
    )


@app.task(name=SETTLE_PAYMENT, ignore_result=True)
def settle_payment(job_id: str, attempt: int = 0) -> None:
    jobs, objects, ledger = _connections()
    cfg = settings()
    _through_redis_outages(
        lambda: settlement.settle(job_id, attempt, jobs, objects, ledger, cfg, dispatcher(cfg)),
        jobs.redis,
    )


@app.task(name=RUN_JOB, ignore_result=True, bind=True)
def run_job(self: Task, job_id: str) -> None:
    jobs, objects, ledger = _connections()
    task_id = self.request.id
    _through_redis_outages(
        lambda: runner.run_job(job_id, jobs, objects, settings(), ledger, task_id), jobs.redis
    )


@task_failure.connect
def _killed_at_hard_limit(
    sender: Task | None = None,
    exception: BaseException | None = None,
    args: tuple[object, ...] = (),
    task_id: str | None = None,
    **_: object,
) -> None:
    """Celery SIGKILLs a child past a hard limit (C code that ignored the soft one) and
    reports it here, in the worker's main process: end the job TIMEOUT, do not leave it."""
    if (
        sender is not None
        and sender.name == RUN_JOB
        and isinstance(exception, TimeLimitExceeded)
        and args
    ):
        jobs, _store, ledger = _connections()
        runner.time_out(str(args[0]), jobs, ledger, settings(), task_id)
