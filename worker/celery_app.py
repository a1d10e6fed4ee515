"""The Celery app. The gateway imports this to enqueue; only workers import the tasks."""

from __future__ import annotations

from celery import Celery

from imagefleet.settings import Settings
from jobs.registry import OPERATIONS

RUN_JOB = "imagefleet.run_job"
DELIVER_WEBHOOK = "imagefleet.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"

app = Celery("imagefleet", include=["worker.tasks"])
app.config_from_object("worker.celeryconfig")


def time_limits(operation: str, cfg: Settings) -> tuple[int, int]:
    """(soft, hard) seconds for an operation: operator overrides (0 = the operation's own),
    and the hard limit always above the soft one."""
    op = OPERATIONS[operation]
    soft = cfg.soft_time_limit or op.soft_time_limit
    return soft, max(cfg.hard_time_limit or op.time_limit, soft + 5)


def enqueue_job(job_id: str, operation: str, cfg: Settings) -> None:
    """Send a job to its pool's queue (tasks carry ids, never image bytes)."""
    soft, hard = time_limits(operation, cfg)
    app.send_task(RUN_JOB, args=[job_id], queue=OPERATIONS[operation].queue,
                  soft_time_limit=soft, time_limit=hard)


def enqueue_webhook(job_id: str, attempt: int = 0, countdown: float = 0) -> None:
    """Deliver (or retry) a job's webhook from the `webhooks` pool."""
    app.send_task(DELIVER_WEBHOOK, args=[job_id, attempt], queue=WEBHOOK_QUEUE,
                  countdown=countdown)
