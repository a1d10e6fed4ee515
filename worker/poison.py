"""Poison jobs: a job whose runs kill their worker child (the OOM killer, a segfault, the hard
time limit's SIGKILL) is not run again and again until FLEET_MAX_ATTEMPTS.

Each run whose pool child died under it is recorded here by the child's renewer process
(worker/renewer.py), which outlives the child: the set `imagefleet:kills:<job id>` of the
attempts that died, so one death is counted once however often it is reported. A run that
starts after KILLS_TO_POISON of them ends the job POISON_JOB instead of running it. A whole
worker that dies (its container, its machine) takes its renewers with it and counts nothing:
that loss is the fleet's, and the job runs again (WORKER_LOST after FLEET_MAX_ATTEMPTS).
"""

from __future__ import annotations

import redis

from jobs.errors import ErrorCode
from jobs.records import JobError

KILLS_TO_POISON = 2
KEPT_SECONDS = 24 * 3600  # a job's runs are over long before


def _key(job_id: str) -> str:
    return f"imagefleet:kills:{job_id}"


def record_kill(client: redis.Redis, job_id: str, attempt: int) -> None:
    with client.pipeline() as pipe:
        pipe.sadd(_key(job_id), attempt)
        pipe.expire(_key(job_id), KEPT_SECONDS)
        pipe.execute()


def kills(client: redis.Redis, job_id: str) -> int:
    """How many runs of the job died with their worker child."""
    return int(client.scard(_key(job_id)))


def error(count: int) -> JobError:
    return JobError(
        ErrorCode.POISON_JOB.value,
        f"this job killed the worker running it {count} times (out of memory, or a crash);"
        " it is not run again",
    )
