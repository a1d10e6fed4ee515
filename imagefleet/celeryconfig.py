"""Celery settings (kept apart from the app, imagefleet/dispatch.py): the gateway sends with
them, the workers run with them. Reliability rules of DESIGN §7."""

from __future__ import annotations

from kombu import Queue

from imagefleet.redis_conn import kombu_broker
from imagefleet.settings import settings
from jobs.pools import Pool
from jobs.registry import OPERATIONS

_s = settings()
_longest_hard_limit = max(
    [op.time_limit for op in OPERATIONS.values()] + [_s.hard_time_limit, _s.soft_time_limit + 5]
)

# Redis by default; a redis+sentinel:// URL becomes kombu's sentinel transport (the master
# the sentinels name, followed through failovers); RabbitMQ (amqp://) scales the same way.
broker_url, _sentinel_options = kombu_broker(_s.broker_url)
broker_connection_retry_on_startup = True
# A message not acked within this time is redelivered: longer than any hard limit.
broker_transport_options = {
    "visibility_timeout": max(3600, 4 * _longest_hard_limit),
    **_sentinel_options,
}

task_queues = [Queue(pool.value) for pool in Pool]
task_default_queue = Pool.CPU.value
task_ignore_result = True  # job records in Redis are the source of truth
task_acks_late = True  # ack after the job ran: a crashed worker's job is redelivered
task_reject_on_worker_lost = True  # ... and so is a job whose child was killed
task_serializer = "json"
accept_content = ["json"]

worker_prefetch_multiplier = 1  # heavy jobs: never hoard messages another worker could run
worker_max_tasks_per_child = 500
worker_max_memory_per_child = 1_500_000  # KiB: recycle a child that grew past ~1.5 GB
worker_hijack_root_logger = False
worker_send_task_events = False
