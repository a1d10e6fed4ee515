"""Leases: how the fleet learns within seconds that the worker running a job is gone.

A run holds its job's lease, the Redis key `imagefleet:lease:<job id>`, whose value is the
run's attempt number and which expires FLEET_LEASE_SECONDS after it was last renewed. It is
renewed every third of that while the run lasts: in a pool child by the child's renewer
process (worker/renewer.py), which needs none of the job process's GIL (resvg and PDFium hold
it while they draw), elsewhere by a daemon thread of the run's process (`Heartbeat`). When
the process, its container or its machine dies, nothing renews the lease; it expires, and the
sweeper resends the job at once instead of waiting past the job's hard limit. The runner lets
a resent copy take a running job only once its lease is gone, so a live run, however long,
is never run twice.

Why a key with a TTL: Redis's clock alone decides when a lease has run out (workers' clocks
may differ), and a dead worker needs no one to clean up after it. The index `imagefleet:leases`
(job id -> when its lease runs out, by the renewer's clock) only tells the sweeper where to
look without reading every running job; the key decides.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, cast

import redis
from redis.client import Pipeline

log = logging.getLogger("imagefleet.worker")

INDEX = "imagefleet:leases"

# Renew and release only the run's own lease: a run that stalled past its lease and lost the
# job to a resent copy must not extend or delete the copy's lease, and a renewal never
# creates a lease, so one that arrives late (after its run ended) changes nothing.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  redis.call('zadd', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('zrem', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def key(job_id: str) -> str:
    return f"imagefleet:lease:{job_id}"


def held(client: redis.Redis, job_id: str) -> bool:
    """Some run of the job renewed its lease within the last FLEET_LEASE_SECONDS."""
    return bool(client.exists(key(job_id)))


def grant(pipe: Pipeline, job_id: str, attempt: int, seconds: float) -> None:
    """Queue the lease of a starting run in the transaction that marks the job running, so a
    running record always has its run's lease beside it (see runner._start)."""
    pipe.set(key(job_id), attempt, px=max(1, int(seconds * 1000)))
    pipe.zadd(INDEX, {job_id: time.time() + seconds})


def release_in(pipe: Pipeline, job_id: str) -> None:
    """Queue a run's release of its lease in the transaction that ends its job, once the
    record read in that transaction still names the run's attempt: every new run bumps the
    attempt as it takes the lease (worker/runner.py _start), so a lease there is this run's."""
    pipe.delete(key(job_id))
    pipe.zrem(INDEX, job_id)


def expired(client: redis.Redis) -> list[str]:
    """Jobs whose lease should have run out by now (the sweeper checks each one's key)."""
    members = cast(list[bytes], client.zrangebyscore(INDEX, "-inf", time.time()))  # no scores
    return [m.decode() for m in members]


def forget(client: redis.Redis, job_id: str) -> None:
    client.zrem(INDEX, job_id)


Renewal = Callable[[str, int, float], bool]  # (job id, attempt, term) -> still this run's


def renewer(client: redis.Redis) -> Renewal:
    """A renewal of one run's lease for another term: False when the lease is gone or
    another run's (it is never created). The lease runs from when Redis got it."""
    script = client.register_script(_RENEW)

    def renew(job_id: str, attempt: int, seconds: float) -> bool:
        kept = script(
            keys=[key(job_id), INDEX],
            args=[attempt, max(1, int(seconds * 1000)), time.time() + seconds, job_id],
        )
        return bool(kept)

    return renew


def release(client: redis.Redis, job_id: str, attempt: int) -> None:
    """Release the run's own lease after its run (a no-op when it is gone or another's)."""
    try:
        client.register_script(_RELEASE)(keys=[key(job_id), INDEX], args=[attempt, job_id])
    except redis.RedisError as error:  # it expires by itself
        log.warning("job %s: lease not released (%s)", job_id, error)


def warn_lost(job_id: str, attempt: int) -> None:
    log.warning("job %s: attempt %d lost its lease; it stops at its next step", job_id, attempt)


class Beat(Protocol):
    """What a run sees of whatever renews its lease (a `Heartbeat` thread, or its pool
    child's renewer process): used as a context manager around the run."""

    released: bool  # the run's end released the lease (release_in)
    ending: bool  # the run's end is being written: a lease found gone is its release

    @property
    def lost(self) -> bool:
        """The lease may have passed to a resent copy (it could not be renewed for a whole
        term, or it was found taken): the run must stop and write nothing."""

    def __enter__(self) -> Beat: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Heartbeat:
    """Renews one run's lease from a daemon thread while the run lasts; releases it after.

    Used as `with Heartbeat(...) as beat:` around the run: on exit the thread is stopped and
    joined before the lease is released, so it never renews a lease after its run ended (if
    Redis hangs past the join, the one renewal still in flight finds the lease released, or
    extends an ended run's lease by one term, which the sweeper ignores)."""

    def __init__(self, client: redis.Redis, job_id: str, attempt: int, seconds: float) -> None:
        self.client, self.job_id, self.attempt, self.seconds = client, job_id, attempt, seconds
        self.renewed = time.monotonic()  # granted just before, in the run's start
        self.taken = False  # a renewal found the lease gone, or another run's
        self.released = False  # the run's end released the lease (release_in)
        self.ending = False  # the run's end is being written: a lease found gone is its release
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {job_id}", daemon=True)
        self._renew = renewer(client)

    @property
    def lost(self) -> bool:
        """The lease may have passed to a resent copy (it could not be renewed for a whole
        term, or it was found taken): the run must stop and write nothing."""
        return self.taken or time.monotonic() - self.renewed >= self.seconds

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(self.seconds)
        if not self.released:
            release(self.client, self.job_id, self.attempt)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            sent = time.monotonic()  # the lease runs from when Redis got the renewal: no later
            try:
                kept = self._renew(self.job_id, self.attempt, self.seconds)
            except redis.RedisError as error:  # Redis away: try again next beat
                log.warning("job %s: lease not renewed (%s)", self.job_id, error)
                continue
            if not kept:
                if self.ending:  # the ending transaction released it: nothing was lost
                    return
                self.taken = True
                warn_lost(self.job_id, self.attempt)
                return
            self.renewed = sent
