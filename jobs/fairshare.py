"""Fair share: one tenant never holds a job pool that another tenant's job is waiting for.

Each job pool's workers run their concurrency, the pool's *share processes* (S, summed
over the live workers of the pool, which register here), plus FLEET_SHARE_RESERVE
processes. A run holds a *slot* of its pool from its start to its end. A tenant T may take
a slot when

    T holds fewer than its share, S / (tenants holding slots, T counted), at least 1,
    or fewer than S slots are held in all.

So a lone tenant fills the S share processes; the reserve processes, and each tenant's
share, are left to tenants under their share, whose jobs start at once. A worker that
takes a job its tenant may not start now *parks* it: the job joins its tenant's backlog in
the pool (in order), still `queued`, its message acked, and the process takes the next
message. Each end of a run in the pool (success, failure, cancel: `release_in`, in the
transaction that ends the job) frees its slot and *feeds* the backlogs, tenants in turn,
while their rule allows: a fed job is granted its slot and its task message is pushed on
the pool's queue (the message stored when it was parked; with a broker other than the job
store's Redis, the sweeper sends it at its next pass).

Everything is in Redis and changed by the scripts below, atomically, so workers on any
number of machines share one view: the hash `imagefleet:share:<pool>` (fields `job:<id>`
-> tenant for each slot held, `t:<tenant>` slots held, `b:<tenant>` jobs parked, and the
pool's `total`, `n` tenants holding slots, `w` tenants waiting, `p` jobs parked, `S`), a
backlog sorted set per tenant, the stored messages, the waiting tenants (in turn order) and
the registered workers. The sweeper (`tidy`) drops slots whose job ended unseen and
recounts every pass; a parked job still has its record in the sweeper's idle index, so a
job that nobody will feed is sent again like any queued job.
The scripts touch a tenant's backlog key by name (not cluster-safe; the fleet runs one
Redis primary).
"""

from __future__ import annotations

import time
from enum import IntEnum
from typing import cast

import redis
from redis.client import Pipeline

from jobs.records import JobRecord, JobStatus
from jobs.registry import OPERATIONS

PREFIX = "imagefleet:share:"
REGISTRATION_SECONDS = 30.0  # a worker's registration lasts this long unless renewed
RENEW_EVERY = 5.0  # ... and a worker renews it this often


class Take(IntEnum):
    PARKED = 0  # its tenant has its share: the job waits in its backlog
    HELD = 1  # the job already holds a slot (fed to it, or a redelivered run)
    TAKEN = 2  # the job took a slot now


# Shared by every script. KEYS: the pool's hash, waiting tenants, stored messages,
# registered workers. ARGV[1..4]: the backlog key prefix, the queue, the idle index, now.
_COMMON = """
local pool, waiting, messages, nodes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local backlog_of, queue, active, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local function num(v) return tonumber(v) or 0 end
-- Whether `job` holds a slot, the pool's counts (total, n, S, w, p), the tenant's (t:, b:).
local function slot_state(job, tenant)
  local v = redis.call('hmget', pool, 'total', 'n', 'S', 'w', 'p',
                       'job:' .. job, 't:' .. tenant, 'b:' .. tenant)
  return v[6], num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5]), num(v[7]), num(v[8])
end
local function may_take(count, total, cap, tenants)
  if cap <= 0 then return true end
  if count == 0 then tenants = tenants + 1 end
  return count < math.max(1, math.floor(cap / tenants)) or total < cap
end
local function feed(total, n, cap, w, p)
  local granted = 0
  for _, tenant in ipairs(redis.call('zrange', waiting, 0, -1)) do
    local v = redis.call('hmget', pool, 't:' .. tenant, 'b:' .. tenant)
    local count, parked, gave = num(v[1]), num(v[2]), 0
    while parked > 0 and may_take(count, total, cap, n) do
      local popped = redis.call('zpopmin', backlog_of .. tenant)
      if #popped == 0 then p = p - parked; parked = 0; gave = gave + 1; break end  -- recount
      local job = popped[1]
      local message = redis.call('hget', messages, job)
      redis.call('hdel', messages, job)
      if count == 0 then n = n + 1 end
      count, total, parked, p, gave = count + 1, total + 1, parked - 1, p - 1, gave + 1
      redis.call('hset', pool, 'job:' .. job, tenant)
      if message and #message > 0 then
        redis.call('lpush', queue, message)
        redis.call('zadd', active, 'XX', now, job)
      else
        redis.call('zadd', active, 'XX', 0, job)
      end
    end
    if gave > 0 then
      if parked == 0 then
        redis.call('zrem', waiting, tenant)
        w = w - 1
      else
        redis.call('zadd', waiting, 'XX', now, tenant)
      end
      redis.call('hset', pool, 't:' .. tenant, count, 'b:' .. tenant, parked)
      granted = granted + gave
    end
  end
  if granted > 0 then
    redis.call('hset', pool, 'total', total, 'n', n, 'w', math.max(0, w), 'p', math.max(0, p))
  end
  return granted
end
"""

# ARGV[5..8]: the job, its tenant, its stored message, '1' for a run that must not park.
_TAKE = (
    _COMMON
    + """
local job, tenant = ARGV[5], ARGV[6]
local held, total, n, cap, w, p, count, parked = slot_state(job, tenant)
if held then return 1 end
local backlog = backlog_of .. tenant
if ARGV[8] == '1' or may_take(count, total, cap, n) then
  if count == 0 then n = n + 1 end
  local fields = {'job:' .. job, tenant, 't:' .. tenant, count + 1, 'total', total + 1, 'n', n}
  if parked > 0 and redis.call('zrem', backlog, job) == 1 then  -- a parked job sent again
    redis.call('hdel', messages, job)
    if parked == 1 then redis.call('zrem', waiting, tenant); w = w - 1 end
    for _, f in ipairs({'b:' .. tenant, parked - 1, 'p', p - 1, 'w', w}) do
      table.insert(fields, f)
    end
  end
  redis.call('hset', pool, unpack(fields))
  return 2
end
if redis.call('zadd', backlog, 'NX', now, job) == 1 then
  redis.call('hset', messages, job, ARGV[7])
  if parked == 0 then redis.call('zadd', waiting, now, tenant); w = w + 1 end
  redis.call('hset', pool, 'b:' .. tenant, parked + 1, 'p', p + 1, 'w', w)
end
return 0
"""
)

# ARGV[5]: the tenant, ARGV[6..]: its new jobs and their task messages, in order. A batch:
# its jobs take slots while the rule allows (their messages pushed), the rest park at once,
# so a flood never sits in the queue in front of other tenants' jobs.
_ADMIT = (
    _COMMON
    + """
local tenant = ARGV[5]
local v = redis.call('hmget', pool, 'total', 'n', 'S', 'w', 'p', 't:' .. tenant, 'b:' .. tenant)
local total, n, cap, w, p = num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5])
local count, parked = num(v[6]), num(v[7])
local was_waiting = parked > 0
local slots, sent, order, stored = {}, {}, {}, {}
for i = 6, #ARGV, 2 do
  local job, message = ARGV[i], ARGV[i + 1]
  if parked == 0 and may_take(count, total, cap, n) then
    if count == 0 then n = n + 1 end
    count, total = count + 1, total + 1
    table.insert(slots, 'job:' .. job); table.insert(slots, tenant)
    table.insert(sent, message)
  else
    table.insert(order, now + i / 1e6); table.insert(order, job)
    table.insert(stored, job); table.insert(stored, message)
    parked, p = parked + 1, p + 1
  end
end
if #sent > 0 then redis.call('lpush', queue, unpack(sent)) end
if #order > 0 then
  redis.call('zadd', backlog_of .. tenant, 'NX', unpack(order))
  redis.call('hset', messages, unpack(stored))
  if not was_waiting then redis.call('zadd', waiting, now, tenant); w = w + 1 end
end
for _, f in ipairs({'t:' .. tenant, count, 'b:' .. tenant, parked,
                    'total', total, 'n', n, 'w', w, 'p', p}) do
  table.insert(slots, f)
end
redis.call('hset', pool, unpack(slots))
return #order / 2
"""
)

# ARGV[5..6]: the job that ended (or left the queue for good), its tenant.
_RELEASE = (
    _COMMON
    + """
local job, tenant = ARGV[5], ARGV[6]
local held, total, n, cap, w, p, count, parked = slot_state(job, tenant)
if held then
  redis.call('hdel', pool, 'job:' .. job)
  count, total = math.max(0, count - 1), math.max(0, total - 1)
  if count == 0 then n = math.max(0, n - 1) end
  redis.call('hset', pool, 't:' .. tenant, count, 'total', total, 'n', n)
elseif parked > 0 and redis.call('zrem', backlog_of .. tenant, job) == 1 then
  redis.call('hdel', messages, job)
  if parked == 1 then redis.call('zrem', waiting, tenant); w = w - 1 end
  p = p - 1
  redis.call('hset', pool, 'b:' .. tenant, parked - 1, 'p', p, 'w', w)
end
if w > 0 then feed(total, n, cap, w, p) end
return 1
"""
)

# ARGV[5]: the worker ('<node>|<share processes>'), ARGV[6]: when its registration
# ends (0: now). Capacity is the live workers' sum.
_REGISTER = (
    _COMMON
    + """
if tonumber(ARGV[6]) > 0 then
  redis.call('zadd', nodes, ARGV[6], ARGV[5])
else
  redis.call('zrem', nodes, ARGV[5])
end
redis.call('zremrangebyscore', nodes, '-inf', now)
local cap = 0
for _, member in ipairs(redis.call('zrange', nodes, 0, -1)) do
  cap = cap + num(string.match(member, '|(%d+)$'))
end
redis.call('hset', pool, 'S', cap)
return cap
"""
)

# ARGV[5..]: slots whose job ended or vanished unseen. Drops them, recounts every field
# from the slots and backlogs, capacity from the live workers, then feeds.
_TIDY = (
    _COMMON
    + """
for i = 5, #ARGV do redis.call('hdel', pool, 'job:' .. ARGV[i]) end
redis.call('zremrangebyscore', nodes, '-inf', now)
local cap = 0
for _, member in ipairs(redis.call('zrange', nodes, 0, -1)) do
  cap = cap + num(string.match(member, '|(%d+)$'))
end
local counts, stale, total, n, w, p = {}, {}, 0, 0, 0, 0
local fields = redis.call('hgetall', pool)
for i = 1, #fields, 2 do
  local f, value = fields[i], fields[i + 1]
  if string.sub(f, 1, 4) == 'job:' then
    if not counts[value] then counts[value] = 0; n = n + 1 end
    counts[value] = counts[value] + 1
    total = total + 1
  elseif string.sub(f, 1, 2) == 't:' or string.sub(f, 1, 2) == 'b:' then
    table.insert(stale, f)
  end
end
if #stale > 0 then redis.call('hdel', pool, unpack(stale)) end
local out = {'S', cap, 'total', total, 'n', n}
for tenant, count in pairs(counts) do
  table.insert(out, 't:' .. tenant); table.insert(out, count)
end
for _, tenant in ipairs(redis.call('zrange', waiting, 0, -1)) do
  local parked = redis.call('zcard', backlog_of .. tenant)
  if parked == 0 then
    redis.call('zrem', waiting, tenant)
  else
    table.insert(out, 'b:' .. tenant); table.insert(out, parked)
    w, p = w + 1, p + parked
  end
end
for _, f in ipairs({'w', w, 'p', p}) do table.insert(out, f) end
redis.call('hset', pool, unpack(out))
return feed(total, n, cap, w, p)
"""
)


def pool_of(record: JobRecord) -> str:
    return OPERATIONS[record.operation].queue.value


def _keys(pool: str) -> list[str]:
    base = pool_key(pool)
    return [base, f"{base}:waiting", f"{base}:messages", f"{base}:nodes"]


def _common_args(pool: str, active: str) -> list[str | float]:
    # The queue: Celery's Redis transport keeps a queue as a list named after it.
    return [f"{PREFIX}{pool}:backlog:", pool, active, time.time()]


def take(client: redis.Redis, record: JobRecord, message: bytes, active: str) -> Take:
    """A worker about to start `record` takes its slot, or parks it (`message`: its task
    message, pushed when it is fed). A run taking over a running job never parks."""
    pool = pool_of(record)
    running = "1" if record.status is JobStatus.RUNNING else "0"
    args = [*_common_args(pool, active), record.id, record.tenant, message, running]
    return Take(int(cast(int, client.register_script(_TAKE)(keys=_keys(pool), args=args))))


def admit_in(
    pipe: Pipeline, tenant: str, pool: str, sent: list[tuple[str, bytes]], active: str
) -> None:
    """Queue, in the transaction that records a tenant's new jobs (a batch), their
    (job id, task message) pairs: pushed on the pool's queue with a slot each while the
    tenant may take one, parked in order after that."""
    pairs = [part for job_id, message in sent for part in (job_id, message)]
    pipe.eval(_ADMIT, 4, *_keys(pool), *_common_args(pool, active), tenant, *pairs)


def release_in(pipe: Pipeline, record: JobRecord, active: str) -> None:
    """Queue, in the transaction that ends a queued or running job, the release of its slot
    (or its place in a backlog) and the feeding of the pool's backlogs. EVAL, not EVALSHA:
    a pipeline's scripts cost a SCRIPT EXISTS round trip per transaction."""
    pool = pool_of(record)
    pipe.eval(_RELEASE, 4, *_keys(pool), *_common_args(pool, active), record.id, record.tenant)


def register(
    client: redis.Redis, pool: str, node: str, processes: int, active: str, alive: bool = True
) -> int:
    """A worker of `pool` with `processes` share processes is alive (renewed every
    RENEW_EVERY), or, `alive=False`, stopping. Returns the pool's share processes."""
    until = time.time() + REGISTRATION_SECONDS if alive else 0
    args = [*_common_args(pool, active), f"{node}|{processes}", until]
    return int(cast(int, client.register_script(_REGISTER)(keys=_keys(pool), args=args)))


def slots(client: redis.Redis, pool: str) -> dict[str, str]:
    """Job id -> tenant of every slot held in the pool."""
    fields = cast(dict[bytes, bytes], client.hgetall(_keys(pool)[0]))
    return {k.decode()[4:]: v.decode() for k, v in fields.items() if k.startswith(b"job:")}


def tidy(client: redis.Redis, pool: str, ended: list[str], active: str) -> int:
    """Drop the slots of `ended` jobs (their end was never seen), recount, and feed the
    backlogs. Returns how many parked jobs were fed."""
    args = [*_common_args(pool, active), *ended]
    return int(cast(int, client.register_script(_TIDY)(keys=_keys(pool), args=args)))


def waits_its_turn(client: redis.Redis, record: JobRecord) -> bool:
    """The job is parked and its tenant holds slots in the pool: one of their ends feeds it."""
    pool = pool_of(record)
    with client.pipeline(transaction=False) as pipe:
        pipe.zscore(f"{PREFIX}{pool}:backlog:{record.tenant}", record.id)
        pipe.hget(_keys(pool)[0], f"t:{record.tenant}")
        score, count = pipe.execute()
    return score is not None and int(count or 0) > 0


def pool_key(pool: str) -> str:
    """The pool's hash; its field `p` counts the jobs parked there (queued, in no message)."""
    return PREFIX + pool
