"""Watching one job: its record now and after every change notification."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from gateway.context import Context
from jobs.records import JobRecord
from jobs.store import events_channel


async def job_changes(ctx: Context, job_id: str, seconds: float,
                      quiet: float) -> AsyncIterator[JobRecord | None]:
    """Yield the job's record (None once it is gone) at once, after each change
    notification, and after every `quiet` seconds without one (in case a notification was
    missed). Stops after the job ends or disappears, or when `seconds` have passed.
    Subscribes before the first read, so no change slips between the two."""
    deadline = time.monotonic() + seconds
    pubsub = ctx.aredis.pubsub()
    await pubsub.subscribe(events_channel(job_id))
    try:
        while True:
            record = await run_in_threadpool(ctx.jobs.get, job_id)
            yield record
            left = deadline - time.monotonic()
            if record is None or record.status.terminal or left <= 0:
                return
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(quiet, left))
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
