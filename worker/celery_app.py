"""The Celery app. The gateway imports this to enqueue; only workers import the tasks."""

from __future__ import annotations

import base64
import functools
import uuid
from typing import Any

import msgspec
from celery import Celery

from imagefleet.settings import Settings
from jobs.registry import OPERATIONS

RUN_JOB = "imagefleet.run_job"
DELIVER_WEBHOOK = "imagefleet.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"

app = Celery("imagefleet", include=["worker.tasks"])
app.config_from_object("worker.celeryconfig")
_json = msgspec.json.Encoder()


def time_limits(operation: str, cfg: Settings) -> tuple[int, int]:
    """(soft, hard) seconds for an operation: operator overrides (0 = the operation's own),
    and the hard limit always above the soft one."""
    op = OPERATIONS[operation]
    soft = cfg.soft_time_limit or op.soft_time_limit
    return soft, max(cfg.hard_time_limit or op.time_limit, soft + 5)


def enqueue_job(job_id: str, operation: str, cfg: Settings) -> None:
    """Send a job to its pool's queue (tasks carry ids, never image bytes)."""
    soft, hard = time_limits(operation, cfg)
    app.send_task(
        RUN_JOB,
        args=[job_id],
        queue=OPERATIONS[operation].queue,
        soft_time_limit=soft,
        time_limit=hard,
    )


@functools.cache
def _run_job_template(soft: int, hard: int) -> Any:
    """Celery's own message for a job task with these limits (built once: `as_task_v2`
    costs more than the rest of the push); each job fills in its ids."""
    return app.amqp.as_task_v2(
        "-", RUN_JOB, args=["-"], soft_time_limit=soft, time_limit=hard, ignore_result=None
    )  # as send_task does


def redis_job_message(job_id: str, operation: str, cfg: Settings) -> tuple[str, bytes]:
    """The job's task message as Celery's Redis transport keeps it (an entry of the list
    named after the queue), for the gateway to push in the same transaction as the job
    record: one round trip instead of kombu's publish, and never a record without its
    message. Celery builds the message (`as_task_v2`); only the per-job ids and kombu's
    envelope are written here, and a test holds it to what `send_task` pushes."""
    queue = OPERATIONS[operation].queue
    template = _run_job_template(*time_limits(operation, cfg))
    task_id = str(uuid.uuid4())
    body = ([job_id], {}, template.body[2])
    envelope = {
        "body": base64.b64encode(_json.encode(body)).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            **template.headers,
            "id": task_id,
            "root_id": task_id,
            "argsrepr": repr([job_id]),
        },
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
    return queue, _json.encode(envelope)


def enqueue_webhook(job_id: str, attempt: int = 0, countdown: float = 0) -> None:
    """Deliver (or retry) a job's webhook from the `webhooks` pool."""
    app.send_task(DELIVER_WEBHOOK, args=[job_id, attempt], queue=WEBHOOK_QUEUE, countdown=countdown)
