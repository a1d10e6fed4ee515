"""Each account's share of the webhooks pool: at most FLEET_WEBHOOK_TENANT_SLOTS of its
attempts under way at once, counted in Redis so the cap holds across every webhooks worker
of the fleet. A delivery that finds its account's slots taken waits its turn (the task is
sent again a little later, not counted as an attempt), so one account's slow receivers
hold a few threads of the pool, never all of them.

A slot is a member of the account's sorted set scored by when it lapses (Redis time): a
worker that dies mid-attempt frees its slot once the attempt's deadline is past."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from imagefleet.settings import Settings

SLOT_GRACE_SECONDS = 30.0  # past the attempt's deadline: the check and the bookkeeping
WAIT_TURN = (0.125, 0.375)  # a deferred delivery asks again after this share of the deadline

# KEYS: the account's slots. ARGV: the slot's id, the cap, seconds the slot may be held.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""


def slots_key(tenant: str) -> str:
    return f"imagefleet:webhook-slots:{tenant}"


@contextmanager
def tenant_slot(client: redis.Redis, tenant: str, cfg: Settings) -> Iterator[bool]:
    """Whether one of the account's slots was free (then it is held until the block ends)."""
    slot = uuid.uuid4().hex
    hold = cfg.webhook_timeout + SLOT_GRACE_SECONDS
    taken = bool(client.eval(_TAKE, 1, slots_key(tenant), slot, cfg.webhook_tenant_slots, hold))
    try:
        yield taken
    finally:
        if taken:
            client.zrem(slots_key(tenant), slot)


def turn_delay(cfg: Settings) -> float:
    """Seconds before a deferred delivery asks again (a slot frees within a deadline; a
    fast receiver's, much sooner)."""
    return cfg.webhook_timeout * random.uniform(*WAIT_TURN)
