"""Per-API-key token buckets in Redis: `rate` requests per second, bursts of twice that.
The bucket is a Lua function, run inside the authentication script (billing/accounts.py) so
that a request's key lookup, account read and token take are one Redis round trip."""

from __future__ import annotations

# take(bucket key, rate per second, now in ms) -> 0 if a request may go now (and takes a
# token), else the milliseconds until one is available.
TAKE_TOKEN_LUA = """
local function take(key, rate, now)
  local burst = math.max(1, 2 * rate)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local last = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - last) / 1000 * rate)
  local wait = 0
  if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  return wait
end
"""
