"""The Celery app. The gateway imports this to enqueue; only workers import the tasks."""

from __future__ import annotations

from celery import Celery

RUN_JOB = "imagefleet.run_job"
DELIVER_WEBHOOK = "imagefleet.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"

app = Celery("imagefleet", include=["worker.tasks"])
app.config_from_object("worker.celeryconfig")


def enqueue_webhook(job_id: str, attempt: int = 0, countdown: float = 0) -> None:
    """Deliver (or retry) a job's webhook from the `webhooks` pool."""
    app.send_task(DELIVER_WEBHOOK, args=[job_id, attempt], queue=WEBHOOK_QUEUE,
                  countdown=countdown)
