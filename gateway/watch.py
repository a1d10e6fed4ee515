"""Watching jobs: one Redis subscription per gateway process hears every job's change
notifications and wakes the requests waiting on that job (`?wait=`, the event stream).

A subscription per request cost a new Redis connection each time (connect, handshake,
subscribe, unsubscribe, close): about half the gateway's CPU per waited job.

The Redis calls made on watchers' behalf (a stream's opening checks, every re-read of a
watched job) pass one gate of WATCHER_CALLS: a flood of watchers queues there instead of
taking the connection pools (100 each) that every other request needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from jobs.records import JobRecord, JobStatus
from jobs.store import EVENTS_PREFIX, JobStore, decode_record

log = logging.getLogger("imagefleet.gateway")
_TERMINAL = {s.value for s in JobStatus if s.terminal}
WATCHER_CALLS = 8  # Redis calls for watchers in flight at once, of the pools' 100


@dataclass(eq=False)  # compared (and hashed) by identity: kept in sets
class Watch:
    """Set when the job changed; `status` is the state the last notification named."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    status: str | None = None


class JobEvents:
    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis | None = None) -> None:
        self.client = client
        self.reader = reader  # watched jobs are read on the event loop with it, if given
        self.watches: dict[str, set[Watch]] = {}
        self.listening = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._calls: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def calls(self) -> asyncio.Semaphore:
        """The gate every Redis call made for a watcher passes (`async with`)."""
        loop = asyncio.get_running_loop()
        if self._calls is None or self._calls[0] is not loop:  # (a test client's new loop)
            self._calls = (loop, asyncio.Semaphore(WATCHER_CALLS))
        return self._calls[1]

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.psubscribe(EVENTS_PREFIX + "*")
                self.listening.set()
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._wake(
                            message["channel"].decode()[len(EVENTS_PREFIX) :],
                            message["data"].decode(),
                        )
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("job notifications interrupted (%s); resubscribing", exc)
            finally:
                self.listening.clear()
                for watches in list(self.watches.values()):  # re-read: a change may be missed
                    for watch in watches:
                        watch.changed.set()
                await pubsub.aclose()
            await asyncio.sleep(0.5)

    def _wake(self, job_id: str, status: str) -> None:
        for watch in self.watches.get(job_id, ()):
            watch.status = status
            watch.changed.set()

    async def read(self, jobs: JobStore, job_id: str) -> JobRecord | None:
        """A watched job's record: on the event loop (no thread hop for one GET) when the
        events have a reader client, else through the store in a thread."""
        if self.reader is None:
            return await run_in_threadpool(jobs.get, job_id)
        raw = await self.reader.get(jobs._key(job_id))
        return decode_record(raw) if raw is not None else None

    @asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[Watch]:
        """Hear the job's changes for the duration of the block. Registered (and the
        subscription live, if Redis is) before the caller's first read of the job."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.listening = asyncio.Event()  # (a test client may bring a new loop)
            self.task = loop.create_task(self._listen())
        watch = Watch()
        self.watches.setdefault(job_id, set()).add(watch)
        try:
            try:
                await asyncio.wait_for(self.listening.wait(), 2.0)
            except TimeoutError:
                pass  # Redis is away: the caller's periodic re-reads still see the end
            yield watch
        finally:
            watches = self.watches.get(job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self.watches[job_id]


async def job_changes(
    events: JobEvents,
    jobs: JobStore,
    job_id: str,
    seconds: float,
    quiet: float,
    ends_only: bool = False,
) -> AsyncGenerator[JobRecord | None, None]:
    """Yield the job's record (None once it is gone) at once, after each change
    notification (with `ends_only`, only after one that names an end), and after every
    `quiet` seconds without one (in case a notification was missed). Stops after the job
    ends or disappears, or when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    async with events.watch(job_id) as watch:
        while True:
            watch.changed.clear()
            async with events.calls():
                record = await events.read(jobs, job_id)
            yield record
            while True:
                left = deadline - time.monotonic()
                if record is None or record.status.terminal or left <= 0:
                    return
                try:
                    await asyncio.wait_for(watch.changed.wait(), min(quiet, left))
                except TimeoutError:
                    break  # quiet for a while: read again
                if not ends_only or watch.status in _TERMINAL or watch.status is None:
                    break
                watch.changed.clear()  # running, say: nothing the caller waits for
