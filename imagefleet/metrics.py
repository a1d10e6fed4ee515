"""Fleet metrics kept in Redis so every process can add to them and any gateway can serve
them: job durations by operation and outcome, failures by code, jobs by state. Rendered in
the Prometheus text format by `GET /metrics` together with the gateway's own counters."""

from __future__ import annotations

from typing import cast

import redis
from redis.client import Pipeline

from imagefleet.redis_conn import texts
from jobs import fairshare
from jobs.pools import JOB_POOLS, Pool
from jobs.store import STATES

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# op|outcome|bound -> runs whose duration fell in that bucket alone (not cumulative: one
# HINCRBY per run, summed at scrape time), op|outcome|sum -> their seconds.
_DURATION = "imagefleet:metrics:job_seconds_by_bucket"
_FAILURES = "imagefleet:metrics:failures"


def _bucket(seconds: float) -> str:
    return next((str(bound) for bound in BUCKETS if seconds <= bound), "+Inf")


def add_run(pipe: Pipeline, op: str, seconds: float, code: str | None) -> None:
    """Queue one ended run's metrics (two or three commands) on `pipe`: the runner adds
    them to the transaction that ends the job, so they cost no round trip of their own."""
    outcome = "failed" if code else "succeeded"
    pipe.hincrby(_DURATION, f"{op}|{outcome}|{_bucket(seconds)}", 1)
    pipe.hincrbyfloat(_DURATION, f"{op}|{outcome}|sum", seconds)
    if code:
        pipe.hincrby(_FAILURES, f"{op}|{code}", 1)


def job_finished(client: redis.Redis, op: str, seconds: float, code: str | None) -> None:
    """Record one ended run on its own (a run whose end another run or a cancel made)."""
    with client.pipeline(transaction=False) as pipe:
        add_run(pipe, op, seconds, code)
        pipe.execute()


def _labels(**pairs: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def render(client: redis.Redis, redis_broker: bool) -> str:
    """The Redis-held fleet metrics in the Prometheus text format."""
    lines = [
        "# HELP imagefleet_job_seconds Job run time in a worker, by operation and outcome.",
        "# TYPE imagefleet_job_seconds histogram",
    ]
    series: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in texts(client.hgetall(_DURATION)).items():
        op, outcome, bound = key.split("|")
        series.setdefault((op, outcome), {})[bound] = value
    for (op, outcome), values in sorted(series.items()):
        labels = dict(operation=op, outcome=outcome)
        runs = 0  # cumulative, as Prometheus histograms are
        for bound in [*map(str, BUCKETS), "+Inf"]:
            runs += int(values.get(bound, 0))
            lines.append(f"imagefleet_job_seconds_bucket{_labels(**labels, le=bound)} {runs}")
        lines.append(f"imagefleet_job_seconds_sum{_labels(**labels)} {values.get('sum', 0)}")
        lines.append(f"imagefleet_job_seconds_count{_labels(**labels)} {runs}")
    lines += [
        "# HELP imagefleet_job_failures_total Failed job runs by operation and code.",
        "# TYPE imagefleet_job_failures_total counter",
    ]
    for key, value in sorted(texts(client.hgetall(_FAILURES)).items()):
        op, code = key.split("|")
        lines.append(f"imagefleet_job_failures_total{_labels(operation=op, code=code)} {value}")
    lines += [
        "# HELP imagefleet_jobs Jobs by state (records within their retention).",
        "# TYPE imagefleet_jobs gauge",
    ]
    for state, value in sorted(texts(client.hgetall(STATES)).items()):
        lines.append(f"imagefleet_jobs{_labels(state=state)} {max(0, int(value))}")
    if redis_broker:  # Celery keeps each Redis queue as a list of the same name
        lines += [
            "# HELP imagefleet_queue_depth Tasks waiting in each queue.",
            "# TYPE imagefleet_queue_depth gauge",
        ]
        for queue in Pool:
            lines.append(f"imagefleet_queue_depth{_labels(queue=queue)} {client.llen(queue)}")
    lines += [
        "# HELP imagefleet_parked_jobs Queued jobs parked for their tenant's fair share.",
        "# TYPE imagefleet_parked_jobs gauge",
    ]
    for pool in JOB_POOLS:
        parked = int(cast(bytes | None, client.hget(fairshare.pool_key(pool), "p")) or 0)
        lines.append(f"imagefleet_parked_jobs{_labels(queue=pool)} {max(0, parked)}")
    return "\n".join(lines) + "\n"
