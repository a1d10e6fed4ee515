"""The gateway pushes a job's task message itself, in the transaction that stores the job
(Redis brokers): the message must be the one Celery's own `send_task` would have pushed."""

from __future__ import annotations

import json

import redis

from imagefleet.dispatch import RUN_JOB, app, redis_job_message, time_limits
from imagefleet.settings import load_settings
from tests.fleet_harness import Fleet
from tests.fleet_helpers import normalised_message, send_task_probe


def test_the_prebuilt_message_is_what_send_task_pushes(dir_fleet: Fleet) -> None:
    client = redis.Redis.from_url(dir_fleet.redis_url)
    cfg = load_settings()
    queue, ours = redis_job_message("job-1", "ocr", cfg)
    soft, hard = time_limits("ocr", cfg)
    with app.connection_for_write(dir_fleet.redis_url) as connection:
        theirs = send_task_probe(connection, client)
    assert queue == "ocr"
    assert normalised_message(ours) == normalised_message(theirs)
    assert json.loads(ours)["properties"]["delivery_info"]["routing_key"] == "ocr"
    headers = json.loads(ours)["headers"]
    assert headers["timelimit"] == [hard, soft] and headers["task"] == RUN_JOB
    client.close()
