"""Dispatch: how work reaches the pools. One small interface, two ways to send.

- `CeleryDispatch` publishes through Celery (any broker: Redis, RabbitMQ).
- `RedisDispatch`, where the broker is the job store's own Redis, writes a new job's task
  message in the same transaction as its record: one round trip instead of kombu's publish,
  and never a record without its message (or the reverse).

The gateway admits with it, the sweeper re-sends with it, the runner and the webhook
deliverer send webhooks with it. Only workers import the tasks (worker/tasks.py).
"""

from __future__ import annotations

import base64
import functools
import logging
import uuid
from typing import Any, Protocol

import msgspec
from celery import Celery

from imagefleet.settings import Settings
from jobs.errors import ErrorCode
from jobs.lifecycle import withdraw
from jobs.pools import Pool
from jobs.records import JobError, JobRecord
from jobs.registry import OPERATIONS
from jobs.store import JobStore

RUN_JOB = "imagefleet.run_job"
DELIVER_WEBHOOK = "imagefleet.deliver_webhook"
SETTLE_PAYMENT = "imagefleet.settle_payment"

app = Celery("imagefleet", include=["worker.tasks"])  # the tasks load in workers only
app.config_from_object("imagefleet.celeryconfig")
_json = msgspec.json.Encoder()
log = logging.getLogger("imagefleet.dispatch")


class QueueUnavailable(Exception):
    """The job was recorded but its message could not be sent; the job was withdrawn."""


def time_limits(operation: str, cfg: Settings) -> tuple[int, int]:
    """(soft, hard) seconds for an operation: operator overrides (0 = the operation's own),
    and the hard limit always above the soft one."""
    op = OPERATIONS[operation]
    soft = cfg.soft_time_limit or op.soft_time_limit
    return soft, max(cfg.hard_time_limit or op.time_limit, soft + 5)


class Dispatch(Protocol):
    def admit(self, jobs: JobStore, record: JobRecord) -> None:
        """Store a new job and send its work; QueueUnavailable when it cannot be sent."""

    def job(self, job_id: str, operation: str) -> None:
        """Send a job's work (again: the sweeper's resend)."""

    def webhook(self, job_id: str, attempt: int = 0, countdown: float = 0) -> None:
        """Deliver (or retry) an ended job's webhook from the webhooks pool."""

    def settle(self, job_id: str, attempt: int = 0, countdown: float = 0) -> None:
        """Settle (or retry settling) a succeeded job's x402 payment from the payments pool
        (its own queue: never behind webhook deliveries)."""


class CeleryDispatch:
    """Any broker, through Celery's publish (tasks carry ids, never image bytes)."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg

    def job(self, job_id: str, operation: str) -> None:
        soft, hard = time_limits(operation, self.cfg)
        app.send_task(
            RUN_JOB,
            args=[job_id],
            queue=OPERATIONS[operation].queue,
            soft_time_limit=soft,
            time_limit=hard,
        )

    def webhook(self, job_id: str, attempt: int = 0, countdown: float = 0) -> None:
        app.send_task(
            DELIVER_WEBHOOK, args=[job_id, attempt], queue=Pool.WEBHOOKS, countdown=countdown
        )

    def settle(self, job_id: str, attempt: int = 0, countdown: float = 0) -> None:
        app.send_task(
            SETTLE_PAYMENT, args=[job_id, attempt], queue=Pool.PAYMENTS, countdown=countdown
        )

    def admit(self, jobs: JobStore, record: JobRecord) -> None:
        jobs.create(record)
        try:
            self.job(record.id, record.operation)
        except Exception as exc:  # broker down: end the job visibly rather than lose it
            log.error("enqueue of %s failed: %s", record.id, exc)
            error = JobError(ErrorCode.UNAVAILABLE.value, "the job queue is unavailable")
            jobs.apply(record.id, withdraw(error))
            raise QueueUnavailable from exc


class RedisDispatch(CeleryDispatch):
    """The broker is the job store's Redis: record and message in one transaction."""

    def admit(self, jobs: JobStore, record: JobRecord) -> None:
        jobs.create(record, redis_job_message(record.id, record.operation, self.cfg))


def dispatcher(cfg: Settings) -> Dispatch:
    return RedisDispatch(cfg) if cfg.broker_url == cfg.redis_url else CeleryDispatch(cfg)


@functools.cache
def _run_job_template(soft: int, hard: int) -> Any:
    """Celery's own message for a job task with these limits (built once: `as_task_v2`
    costs more than the rest of the push); each job fills in its ids."""
    return app.amqp.as_task_v2(
        "-", RUN_JOB, args=["-"], soft_time_limit=soft, time_limit=hard, ignore_result=None
    )  # as send_task does


def _redis_entry(body: Any, headers: dict[str, Any], task_id: str, queue: str) -> bytes:
    """kombu's envelope around a Celery message, as its Redis transport keeps it (an entry
    of the list named after the queue)."""
    envelope = {
        "body": base64.b64encode(_json.encode(body)).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": app.thread_oid,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return _json.encode(envelope)


def redis_job_message(job_id: str, operation: str, cfg: Settings) -> tuple[str, bytes]:
    """The job's task message as Celery's Redis transport keeps it, for the gateway to push
    in the transaction that records the job. Celery builds the message (`as_task_v2`, once
    per time limits); only the per-job ids and kombu's envelope are written here, and
    tests/test_enqueue.py holds it to what `send_task` pushes with the pinned celery and
    kombu."""
    queue = OPERATIONS[operation].queue
    template = _run_job_template(*time_limits(operation, cfg))
    task_id = str(uuid.uuid4())
    body: tuple[list[str], dict[str, Any], Any] = ([job_id], {}, template.body[2])
    headers = {**template.headers, "id": task_id, "root_id": task_id, "argsrepr": repr([job_id])}
    return queue, _redis_entry(body, headers, task_id, queue)


def parked_message(job_id: str, operation: str, cfg: Settings) -> bytes:
    """The task message a parked job is sent with when its turn comes (jobs/fairshare.py
    pushes it from Redis), or b"" when the broker is not the job store's Redis (the sweeper
    sends it then)."""
    if cfg.broker_url != cfg.redis_url:
        return b""
    return redis_job_message(job_id, operation, cfg)[1]


def redis_task_message(task: str, args: list[Any], queue: str) -> bytes:
    """Any task's message as Celery's Redis transport keeps it (e.g. a batch's webhook,
    pushed by the transaction that ends the batch's last job: jobs/batches.py)."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, task, args=args, ignore_result=None)
    return _redis_entry(message.body, message.headers, task_id, queue)
