"""`GET /v1/jobs/{id}/events`: server-sent events of a job's changes until it ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from gateway.context import Context, authenticate, context
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobRecord
from jobs.store import events_channel

HEARTBEAT_SECONDS = 15
MAX_STREAM_SECONDS = 3600


def _event(record: JobRecord) -> bytes:
    return (f"event: {record.status.value}\nid: {record.updated_at.isoformat()}\n"
            f"data: ").encode() + msgspec.json.encode(record.public()) + b"\n\n"


async def _stream(ctx: Context, client: aioredis.Redis, job_id: str) -> AsyncIterator[bytes]:
    pubsub = client.pubsub()
    await pubsub.subscribe(events_channel(job_id))  # before reading: no change slips by
    try:
        last = None
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while time.monotonic() < deadline:
            record = await run_in_threadpool(ctx.jobs.get, job_id)
            if record is None:
                return
            if (record.status, record.updated_at) != last:
                last = (record.status, record.updated_at)
                yield _event(record)
            if record.status.terminal:
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=HEARTBEAT_SECONDS)
            if message is None:
                yield b": keep-alive\n\n"
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def job_events(request: Request) -> StreamingResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    job_id = request.path_params["job_id"]
    record = await run_in_threadpool(ctx.jobs.get, job_id)
    if record is None or record.tenant != tenant:
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")
    return StreamingResponse(_stream(ctx, ctx.aredis, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
