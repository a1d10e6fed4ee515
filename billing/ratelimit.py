"""Per-API-key token buckets in Redis: `rate` requests per second, bursts of twice that."""

from __future__ import annotations

import time

import redis

from billing.ledger import PREFIX

_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) / 1000 * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._take = client.register_script(_TAKE)

    def wait_ms(self, bucket: str, rate: float) -> int:
        """0 if a request may go now (and takes a token), else ms until one is available."""
        if rate <= 0:
            return 0
        now = int(time.time() * 1000)
        burst = max(1.0, 2 * rate)
        return int(self._take(keys=[f"{PREFIX}rate:{bucket}"], args=[rate, burst, now]))
