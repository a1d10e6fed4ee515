"""Batches in Redis: one hash per batch with its owner, its answer (the per-item job ids or
errors), and its jobs counted by state. A job of a batch carries `batch_id`; each of its
changes moves the counts in the same transaction as the job (`on_change`, called from
`JobStore.apply`), and the change that ends the batch's last job pushes the batch's
webhook message (built at admission) onto its queue, in that same transaction: one webhook,
never none, never two.
"""

from __future__ import annotations

import secrets
from typing import Any, cast

import msgspec
import redis
from redis.client import Pipeline

from jobs.pools import Pool
from jobs.records import JobRecord, JobStatus, now

DELIVER_BATCH_WEBHOOK = "imagefleet.deliver_batch_webhook"
STATES = tuple(status.value for status in JobStatus)


def batch_key(batch_id: str) -> str:
    return f"imagefleet:batch:{batch_id}"


def new_batch_id() -> str:
    # Like job ids: time-ordered prefix, random suffix.
    return f"bat_{int(now().timestamp() * 1000):012x}{secrets.token_hex(10)}"


# KEYS: the batch, the webhook queue, the batch's events channel.
# ARGV: the state before, the state after, '1' if the job just ended, the time.
_ON_CHANGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
end
if ARGV[3] == '1' then
  if redis.call('HINCRBY', KEYS[1], 'remaining', -1) == 0 then
    redis.call('HSET', KEYS[1], 'ended_at', ARGV[4])
    local message = redis.call('HGET', KEYS[1], 'message')
    if message then redis.call('LPUSH', KEYS[2], message) end
  end
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
"""


def on_change(pipe: Pipeline, before: JobStatus, record: JobRecord) -> None:
    """Count a batch job's change in the transaction `pipe` is building. EVAL, not
    EVALSHA: a pipeline's scripts cost a SCRIPT EXISTS round trip per transaction."""
    from jobs.store import events_channel  # (jobs.store imports this module)

    assert record.batch_id is not None
    ended = record.status.terminal and not before.terminal
    pipe.eval(
        _ON_CHANGE,
        3,
        batch_key(record.batch_id),
        Pool.WEBHOOKS.value,
        events_channel(record.batch_id),
        before.value,
        record.status.value,
        "1" if ended else "0",
        now().isoformat(),
    )


class Batch(msgspec.Struct, kw_only=True):
    """A batch as stored (counts are read beside it)."""

    id: str
    tenant: str
    created_at: str
    items: bytes  # the admission's answer, JSON: replayed as it was
    admitted: int
    total: int
    webhook_url: str | None = None
    ended_at: str | None = None
    webhook_state: str | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.ended_at is not None

    def public(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "created_at": self.created_at,
            "total": self.total,
            "admitted": self.admitted,
            "rejected": self.total - self.admitted,
            "counts": {state: self.counts.get(state, 0) for state in STATES},
            "done": self.done,
            "ended_at": self.ended_at,
        }
        if self.webhook_url is not None:
            body["webhook"] = {"url": self.webhook_url, "state": self.webhook_state or "pending"}
        return body


def stage(pipe: Pipeline, batch: Batch, message: bytes | None, ttl: int) -> None:
    """A new batch's hash, added to the transaction that records its jobs (so no job can
    end before its batch counts it). A batch with no job admitted ends at once."""
    fields: dict[Any, Any] = {
        "tenant": batch.tenant,
        "created_at": batch.created_at,
        "items": batch.items,
        "admitted": batch.admitted,
        "total": batch.total,
        "remaining": batch.admitted,
        JobStatus.QUEUED.value: batch.admitted,
    }
    if batch.webhook_url is not None:
        fields["webhook_url"] = batch.webhook_url
    if message is not None and batch.admitted:
        fields["message"] = message
    if not batch.admitted:
        fields["ended_at"] = batch.created_at
        if message is not None:
            pipe.lpush(Pool.WEBHOOKS.value, message)
    pipe.hset(batch_key(batch.id), mapping=fields)
    pipe.expire(batch_key(batch.id), ttl)


def load(client: redis.Redis, batch_id: str) -> Batch | None:
    raw = cast(dict[bytes, bytes], client.hgetall(batch_key(batch_id)))
    if not raw:
        return None
    text = {k.decode(): v for k, v in raw.items()}

    def opt(name: str) -> str | None:
        value = text.get(name)
        return value.decode() if value is not None else None

    return Batch(
        id=batch_id,
        tenant=text["tenant"].decode(),
        created_at=text["created_at"].decode(),
        items=text["items"],
        admitted=int(text["admitted"]),
        total=int(text["total"]),
        webhook_url=opt("webhook_url"),
        ended_at=opt("ended_at"),
        webhook_state=opt("webhook_state"),
        counts={state: int(text.get(state, b"0")) for state in STATES},
    )


def note_webhook(client: redis.Redis, batch_id: str, state: str) -> None:
    client.hset(batch_key(batch_id), "webhook_state", state)
