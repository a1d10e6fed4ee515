"""The gateway pushes a job's task message itself, in the transaction that stores the job
(Redis brokers): the message must be the one Celery's own `send_task` would have pushed."""

from __future__ import annotations

import json
import uuid

import redis

from imagefleet.dispatch import RUN_JOB, app, redis_job_message, time_limits
from imagefleet.settings import load_settings
from tests.fleet_harness import Fleet
from tests.fleet_helpers import normalised_message


def test_the_prebuilt_message_is_what_send_task_pushes(dir_fleet: Fleet) -> None:
    client = redis.Redis.from_url(dir_fleet.redis_url)
    cfg = load_settings()
    queue, ours = redis_job_message("job-1", "ocr", cfg)
    probe = f"probe-{uuid.uuid4().hex}"  # no worker listens here
    soft, hard = time_limits("ocr", cfg)
    with app.connection_for_write(dir_fleet.redis_url) as connection:
        app.send_task(
            RUN_JOB,
            args=["job-1"],
            queue=probe,
            connection=connection,
            soft_time_limit=soft,
            time_limit=hard,
        )
    theirs = client.lpop(probe)
    client.delete(f"_kombu.binding.{probe}", f"_kombu.binding_permanent.{probe}")
    assert queue == "ocr" and isinstance(theirs, bytes)
    assert normalised_message(ours) == normalised_message(theirs)
    assert json.loads(ours)["properties"]["delivery_info"]["routing_key"] == "ocr"
    headers = json.loads(ours)["headers"]
    assert headers["timelimit"] == [hard, soft] and headers["task"] == RUN_JOB
    client.close()
