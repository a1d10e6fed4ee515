"""The Celery app. The gateway imports this to enqueue; only workers import the tasks."""

from __future__ import annotations

from celery import Celery

RUN_JOB = "imagefleet.run_job"

app = Celery("imagefleet", include=["worker.tasks"])
app.config_from_object("worker.celeryconfig")
