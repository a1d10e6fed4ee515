"""How often a webhook may be sent again on request (`POST /v1/jobs/{id}/webhook/redeliver`):
FLEET_WEBHOOK_REDELIVERIES per job, and FLEET_WEBHOOK_REDELIVER_RATE a second per account (a
token bucket, billing/ratelimit.py). A redelivery is unbilled, and each one can hold a slot
of the webhooks pool for a whole deadline per attempt: both limits are checked, and the
job's count taken, in one Redis script before anything is queued."""

from __future__ import annotations

import time

import redis

from billing.ratelimit import TAKE_TOKEN_LUA
from gateway.context import rate_limited
from imagefleet.settings import Settings
from jobs.errors import ErrorCode, FleetError

# KEYS: the account's bucket, the job's count. ARGV: the rate, now (ms), the per-job cap,
# the count's lifetime (s). -> {SPENT, 0}, {WAIT, ms until the bucket has a token} or
# {GO, the job's redeliveries so far, this one counted}.
SPENT, WAIT, GO = 0, 1, 2
_REDELIVER = (
    TAKE_TOKEN_LUA
    + """
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count >= tonumber(ARGV[3]) then return {0, 0} end
local wait = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {1, wait} end
count = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return {2, count}
"""
)


def take_redelivery(client: redis.Redis, tenant: str, job_id: str, cfg: Settings) -> int:
    """Count one redelivery of `job_id`, or raise 429 RATE_LIMITED: the ones it has left."""
    cap = cfg.webhook_redeliveries
    verdict, value = client.eval(
        _REDELIVER,
        2,
        f"imagefleet:rate:redeliver:{tenant}",
        f"imagefleet:redeliveries:{job_id}",
        cfg.webhook_redeliver_rate,
        int(time.time() * 1000),
        cap,
        cfg.job_ttl_seconds,
    )
    if verdict == SPENT:  # for good: no Retry-After would help
        raise FleetError(
            ErrorCode.RATE_LIMITED,
            f"this job's webhook was already redelivered {cap} times, the most one job"
            " takes (FLEET_WEBHOOK_REDELIVERIES)",
        )
    if verdict == WAIT:
        raise rate_limited(int(value), "too many webhook redeliveries for this account")
    return cap - int(value)
