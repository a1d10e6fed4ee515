"""Job records in Redis. Records change only through the lifecycle's transitions
(jobs/lifecycle.py), each applied atomically from the states it names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

import msgspec
import redis
from redis.client import Pipeline

from jobs import batches, fairshare
from jobs.lifecycle import Transition, owes_work
from jobs.records import JobRecord, JobStatus, now
from jobs.registry import OPERATIONS

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JobRecord)


def _taken(body: dict[str, Any], struct: type[msgspec.Struct]) -> dict[str, Any]:
    names = {field.encode_name for field in msgspec.structs.fields(struct)}
    return {k: v for k, v in body.items() if k in names or k == "operation"}


def decode_record(raw: bytes | str) -> JobRecord:
    """A stored record. One written before its spec refused the fields its operation
    ignores (an `ocr` job with `format`, a pipeline step with `output`) is read with those
    fields dropped: a job kept from an older release is still shown, never a 500."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError:
        body = msgspec.json.decode(raw)
        spec = body.get("spec")
        op = OPERATIONS.get(str(spec.get("operation"))) if isinstance(spec, dict) else None
        if op is None or not isinstance(spec, dict):
            raise
        spec = _taken(spec, op.spec)
        if isinstance(spec.get("steps"), list):
            spec["steps"] = [
                _taken(step, OPERATIONS[name].step or op.spec)
                if isinstance(step, dict) and (name := step.get("operation")) in OPERATIONS
                else step
                for step in spec["steps"]
            ]
        return _decoder.decode(msgspec.json.encode({**body, "spec": spec}))


# Jobs the fleet still owes something (an end, or a webhook), scored by their last change:
# the sweeper looks here for work whose message was lost.
ACTIVE = "imagefleet:active"


# Jobs by state, kept in the same transactions as the records (served by GET /metrics).
STATES = "imagefleet:metrics:job_states"


EVENTS_PREFIX = "imagefleet:events:"


def events_channel(job_id: str) -> str:
    """Redis pub/sub channel that hears every change of a job (its new state as payload)."""
    return EVENTS_PREFIX + job_id


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    @staticmethod
    def _key(job_id: str) -> str:
        return f"imagefleet:job:{job_id}"

    def create(self, record: JobRecord, message: tuple[str, bytes] | None = None) -> None:
        """Store a new job and, when given, its (queue, task message) in one transaction."""
        with self.redis.pipeline() as pipe:
            pipe.set(self._key(record.id), _encoder.encode(record), ex=self.ttl, nx=True)
            pipe.zadd(
                f"imagefleet:jobs:{record.tenant}",
                {record.id: int(record.created_at.timestamp() * 1_000_000)},
            )
            pipe.publish(events_channel(record.id), record.status.value)
            pipe.hincrby(STATES, record.status.value, 1)
            pipe.zadd(ACTIVE, {record.id: record.created_at.timestamp()})
            if message is not None:
                pipe.lpush(*message)
            pipe.execute()

    def stage_many(
        self, pipe: Pipeline, records: list[JobRecord], messages: list[tuple[str, bytes]] | None
    ) -> None:
        """Many new jobs (a batch's, with their (queue, task message) pairs) added to a
        transaction: `create`'s writes in a few commands, the indexes and counts taking every
        job at once, each queue its messages in one script (in order, the first pushed is the
        first taken; those past the tenant's fair share parked at once: jobs/fairshare.py),
        and no creation notice (nobody can watch an id not yet answered)."""
        if not records:
            return
        for record in records:
            pipe.set(self._key(record.id), _encoder.encode(record), ex=self.ttl, nx=True)
        pipe.zadd(
            f"imagefleet:jobs:{records[0].tenant}",
            {r.id: int(r.created_at.timestamp() * 1_000_000) for r in records},
        )
        pipe.hincrby(STATES, JobStatus.QUEUED.value, len(records))
        pipe.zadd(ACTIVE, {r.id: r.created_at.timestamp() for r in records})
        queues: dict[str, list[tuple[str, bytes]]] = {}
        for record, (queue, message) in zip(records, messages or (), strict=False):
            queues.setdefault(queue, []).append((record.id, message))
        for queue, sent in queues.items():  # pushed, or parked for the tenant's share
            fairshare.admit_in(pipe, records[0].tenant, queue, sent, ACTIVE)

    def newest(
        self, tenant: str, limit: int, before: int | None = None, status: JobStatus | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """A tenant's jobs, newest first, and the cursor of the next page (or None)."""
        index = f"imagefleet:jobs:{tenant}"
        found: list[JobRecord] = []
        top = f"({before}" if before is not None else "+inf"
        while len(found) < limit:
            batch = cast(
                list[tuple[bytes, float]],
                self.redis.zrevrangebyscore(
                    index, top, "-inf", start=0, num=limit * 2, withscores=True
                ),
            )
            if not batch:
                return found, None
            for member, score in batch:
                top = f"({int(score)}"
                record = self.get(member.decode())
                if record is None:  # expired: drop it from the index
                    self.redis.zrem(index, member)
                elif status is None or record.status == status:
                    found.append(record)
                    if len(found) == limit:
                        return found, str(int(score))
        return found, None

    def idle(self, seconds: float) -> list[str]:
        """Jobs that owe work and have not changed for `seconds` (oldest first)."""
        cutoff = now().timestamp() - seconds
        members = cast(list[bytes], self.redis.zrangebyscore(ACTIVE, "-inf", cutoff))
        return [m.decode() for m in members]

    def touch(self, job_id: str) -> None:
        """Restart a job's idle clock (after the sweeper re-sent its work)."""
        self.redis.zadd(ACTIVE, {job_id: now().timestamp()}, xx=True)

    def forget(self, job_id: str) -> None:
        self.redis.zrem(ACTIVE, job_id)

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.get(self._key(job_id))
        return decode_record(raw) if raw is not None else None

    def apply(
        self,
        job_id: str,
        transition: Transition,
        watch: Iterable[str] = (),
        also: Callable[[Pipeline, JobRecord], None] | None = None,
    ) -> JobRecord | None:
        """Apply a transition atomically if the job is in one of the states it starts from;
        else return None. The change may read the keys in `watch` (they are watched with the
        record, so a write to any of them makes the whole update start again), and `also`
        adds writes of its own to the same transaction (the runner's lease, worker/lease.py)."""
        allowed = set(transition.allowed_from)
        key = self._key(job_id)
        watched = (key, *watch)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*watched)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None
                    record = decode_record(raw)
                    if record.status not in allowed:
                        pipe.unwatch()
                        return None
                    before = record.status
                    transition.change(record)
                    record.updated_at = now()
                    pipe.multi()
                    pipe.set(key, _encoder.encode(record), keepttl=True)
                    if also is not None:
                        also(pipe, record)
                    pipe.publish(events_channel(job_id), record.status.value)
                    if record.batch_id is not None:  # the batch counts its jobs' ends
                        batches.on_change(pipe, before, record)
                    if record.status.terminal and not before.terminal:  # its pool slot
                        fairshare.release_in(pipe, record, ACTIVE)  # goes to the next job
                    if record.status != before:
                        pipe.hincrby(STATES, before.value, -1)
                        pipe.hincrby(STATES, record.status.value, 1)
                    if owes_work(record):
                        pipe.zadd(ACTIVE, {job_id: record.updated_at.timestamp()})
                    else:
                        pipe.zrem(ACTIVE, job_id)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue
