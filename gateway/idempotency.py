"""Idempotency-Key: per account for 24 h, the same key and body give the same job.

The first request claims the key atomically (SET NX) with its body's hash and the job id it
will create, so concurrent duplicates find the claim instead of creating a second job.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

from imagefleet.redis_conn import text
from jobs.errors import ErrorCode, FleetError
from jobs.records import job_age_seconds

TTL_SECONDS = 24 * 3600
# A claim this old whose job was never recorded belongs to a request that died (its gateway
# lost Redis or crashed mid-admission); a retry may take the key over.
ABANDONED_SECONDS = 30
_PREFIX = "imagefleet:idem:"
Made = TypeVar("Made")  # what a key makes: a job record, a batch


def body_hash(body: bytes) -> str:
    """Hash of the JSON body with key order and spacing normalised."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode(errors="replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency(Generic[Made]):
    """Keys of one kind: a job's (`Idempotency(redis, jobs.get)`), or a batch's, kept apart
    under their own prefix. `find` looks up what a key made, by its id."""

    def __init__(
        self, client: redis.Redis, find: Callable[[str], Made | None], prefix: str = _PREFIX
    ) -> None:
        self.redis = client
        self.find = find
        self.prefix = prefix

    def _key(self, tenant: str, key: str) -> str:
        return self.prefix + tenant + ":" + hashlib.sha256(key.encode()).hexdigest()

    def claim(self, tenant: str, key: str, digest: str, job_id: str) -> Made | None:
        """None if this request now owns the key; else what the key already made."""
        if len(key) > 255:
            raise FleetError(ErrorCode.VALIDATION_ERROR, "Idempotency-Key is at most 255 chars")
        deadline = time.monotonic() + 10
        while True:
            if self.redis.set(
                self._key(tenant, key), f"{digest}:{job_id}", nx=True, ex=TTL_SECONDS
            ):
                return None
            stored = self.redis.get(self._key(tenant, key))
            if stored is not None:
                stored_digest, _, existing = text(stored).partition(":")
                if stored_digest != digest:
                    raise FleetError(
                        ErrorCode.IDEMPOTENCY_CONFLICT,
                        "this Idempotency-Key was used with a different body",
                    )
                made = self.find(existing)
                if made is not None:
                    return made
                if job_age_seconds(existing) > ABANDONED_SECONDS and self._take_over(
                    tenant, key, stored, f"{digest}:{job_id}"
                ):
                    return None
            if time.monotonic() > deadline:  # the first request is stuck: say so, don't guess
                raise FleetError(
                    ErrorCode.UNAVAILABLE,
                    "a request with this Idempotency-Key is still in progress",
                )
            time.sleep(0.02)  # the first request is creating its job right now

    def _take_over(self, tenant: str, key: str, stale: bytes | str, claim: str) -> bool:
        """Replace an abandoned claim, unless another retry replaced it first."""
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(self._key(tenant, key))
                if pipe.get(self._key(tenant, key)) != stale:
                    return False
                pipe.multi()
                pipe.set(self._key(tenant, key), claim, ex=TTL_SECONDS)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def release(self, tenant: str, key: str, job_id: str) -> None:
        """Give the key up when the request that claimed it failed before making a job."""
        stored = self.redis.get(self._key(tenant, key))
        if stored is not None and text(stored).endswith(":" + job_id):
            self.redis.delete(self._key(tenant, key))
