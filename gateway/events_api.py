"""`GET /v1/jobs/{id}/events`: server-sent events of a job's changes until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from gateway.context import Context, authenticate, context
from gateway.watch import job_changes
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobRecord

HEARTBEAT_SECONDS = 15
MAX_STREAM_SECONDS = 3600


def _event(record: JobRecord) -> bytes:
    return (f"event: {record.status.value}\nid: {record.updated_at.isoformat()}\n"
            f"data: ").encode() + msgspec.json.encode(record.public()) + b"\n\n"


async def _stream(ctx: Context, job_id: str) -> AsyncIterator[bytes]:
    last = None
    async with aclosing(job_changes(ctx.events, ctx.jobs, job_id, MAX_STREAM_SECONDS,
                                    quiet=HEARTBEAT_SECONDS)) as changes:
        async for record in changes:
            if record is None:
                return
            if (record.status, record.updated_at) == last:  # every update moves updated_at,
                yield b": keep-alive\n\n"  # so an unchanged record means a quiet stretch
            else:
                last = (record.status, record.updated_at)
                yield _event(record)


async def job_events(request: Request) -> StreamingResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    job_id = request.path_params["job_id"]
    record = await run_in_threadpool(ctx.jobs.get, job_id)
    if record is None or record.tenant != tenant:
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")
    return StreamingResponse(_stream(ctx, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
