"""`GET /v1/jobs/{id}/events`: server-sent events of a job's changes until it ends.

An API key may hold `max_event_streams_per_key` open streams; one more is `429
RATE_LIMITED` with `Retry-After`. The count is kept in memory per gateway process (N gateway
processes allow N times as many) and a slot is freed as soon as its stream ends or its
client goes away. Streams share the gateway's one job subscription, and their Redis calls
pass the watchers' gate (gateway/watch.py), so a flood of them leaves the pools alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.context import Context, authenticate, context
from gateway.watch import job_changes
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobRecord

HEARTBEAT_SECONDS = 15
MAX_STREAM_SECONDS = 3600
RETRY_AFTER_SECONDS = 5  # the 429's hint: by then one of the key's streams may have ended


class StreamSlots:
    """Open event streams per tenant, counted in this process."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    def take(self, tenant: str, cap: int) -> Callable[[], None]:
        """A slot for one more stream (RATE_LIMITED past `cap`) and the call that frees it."""
        if self.open[tenant] >= cap:
            raise FleetError(
                ErrorCode.RATE_LIMITED,
                f"this API key already holds {cap} open event streams, the most it may; "
                f"close one, or retry in {RETRY_AFTER_SECONDS} s",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.open[tenant] += 1
        freed = False

        def free() -> None:
            nonlocal freed
            if not freed:
                freed = True
                self.open[tenant] -= 1
                if self.open[tenant] <= 0:
                    del self.open[tenant]

        return free


SLOTS = StreamSlots()


class _SlotStream(StreamingResponse):
    """An event stream that frees its slot however it ends: done, failed or disconnected
    (Starlette cancels the stream when the client's disconnect arrives)."""

    def __init__(self, content: AsyncIterator[bytes], free: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.free = free

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.free()


def _event(record: JobRecord) -> bytes:
    return (
        (f"event: {record.status.value}\nid: {record.updated_at.isoformat()}\ndata: ").encode()
        + msgspec.json.encode(record.public())
        + b"\n\n"
    )


async def _stream(ctx: Context, job_id: str) -> AsyncIterator[bytes]:
    last = None
    # job_changes is an async generator (gateway/watch.py types it as an iterator only)
    changes_of = job_changes(
        ctx.events, ctx.jobs, job_id, MAX_STREAM_SECONDS, quiet=HEARTBEAT_SECONDS
    )
    async with aclosing(changes_of) as changes:
        async for record in changes:
            if record is None:
                return
            if (record.status, record.updated_at) == last:  # every update moves updated_at,
                yield b": keep-alive\n\n"  # so an unchanged record means a quiet stretch
            else:
                last = (record.status, record.updated_at)
                yield _event(record)


async def job_events(request: Request) -> StreamingResponse:
    ctx = context(request)
    async with ctx.events.calls():  # a flood of streams waits here, not in the Redis pool
        tenant = await authenticate(request)
    free = SLOTS.take(tenant, ctx.settings.max_event_streams_per_key)
    try:
        job_id = request.path_params["job_id"]
        async with ctx.events.calls():
            record = await run_in_threadpool(ctx.jobs.get, job_id)
        if record is None or record.tenant != tenant:
            raise FleetError(ErrorCode.NOT_FOUND, "no such job")
    except BaseException:
        free()
        raise
    return _SlotStream(_stream(ctx, job_id), free)
