"""The batch routes: submit many jobs at once (`POST /v1/batches`, admission in
gateway/batch_admission.py), a batch's counts by state (`GET /v1/batches/{id}`), and its
progress as server-sent events until every job of it ended (`.../events`, sharing the job
streams' per-key slots and the gateway's one subscription: gateway/events_api.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from billing.accounts import Account
from gateway.batch_admission import admit_batch
from gateway.context import Context, authenticate, context
from gateway.events_api import HEARTBEAT_SECONDS, MAX_STREAM_SECONDS, SLOTS, _SlotStream
from gateway.http import JSONResponse, read_body
from gateway.idempotency import body_hash
from jobs import batches
from jobs.errors import ErrorCode, FleetError

log = logging.getLogger("imagefleet.gateway")
COALESCE_SECONDS = 0.25  # a busy batch sends at most about four progress events a second


def _accepted(batch: batches.Batch) -> bytes:
    """The 202 body: the batch and, per item in order, its job or its error. A replay
    gives back the very same items."""
    return (
        b'{"id":"%s","admitted":%d,"rejected":%d,"items":'
        % (batch.id.encode(), batch.admitted, batch.total - batch.admitted)
        + batch.items
        + b"}"
    )


def _submit(
    ctx: Context, account: Account, body: bytes, idempotency_key: str | None
) -> tuple[batches.Batch, bool]:
    """Admit every item: one thread hop for the whole batch."""
    idem = (idempotency_key, body_hash(body)) if idempotency_key else None
    batch, new = admit_batch(ctx, account, body, idem)
    if new:
        log.info(
            "batch %s: %d of %d jobs queued for %s",
            batch.id,
            batch.admitted,
            batch.total,
            account.id,
        )
    return batch, new


async def submit_batch(request: Request) -> Response:
    await authenticate(request)  # the key before the body: a body without a valid key is never read
    ctx = context(request)
    # The specs, and inline inputs up to one job's inline limit in all (upload larger ones).
    limit = ctx.settings.max_inline_bytes * 4 // 3 + ctx.settings.max_batch_jobs * 8 * 1024
    body = await read_body(request, limit)
    batch, new = await run_in_threadpool(
        _submit, ctx, request.state.account, body, request.headers.get("idempotency-key")
    )
    headers = {"Location": f"/v1/batches/{batch.id}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        _accepted(batch), status_code=202, media_type="application/json", headers=headers
    )


async def _owned(request: Request, gate: bool = False) -> tuple[Context, batches.Batch]:
    """The caller's batch; `gate`: pass the watchers' gate, as a stream's calls do."""
    ctx = context(request)
    async with ctx.events.calls() if gate else contextlib.nullcontext():
        tenant = await authenticate(request)
        found = await run_in_threadpool(batches.load, ctx.redis, request.path_params["batch_id"])
    if found is None or found.tenant != tenant:  # 404, never 403: ids don't leak existence
        raise FleetError(ErrorCode.NOT_FOUND, "no such batch")
    return ctx, found


async def get_batch(request: Request) -> JSONResponse:
    _, batch = await _owned(request)
    return JSONResponse(batch.public())


def _event(batch: batches.Batch) -> bytes:
    kind = "done" if batch.done else "progress"
    return f"event: {kind}\ndata: ".encode() + msgspec.json.encode(batch.public()) + b"\n\n"


async def _stream(ctx: Context, batch_id: str) -> AsyncIterator[bytes]:
    """Each change of counts (coalesced), a keep-alive in quiet stretches, and `done`."""
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    last = None
    async with ctx.events.watch(batch_id) as watch:
        while time.monotonic() < deadline:
            watch.changed.clear()
            async with ctx.events.calls():
                batch = await run_in_threadpool(batches.load, ctx.redis, batch_id)
            if batch is None:
                return
            seen = (batch.counts, batch.done)
            if seen != last:
                last = seen
                yield _event(batch)
                if batch.done:
                    return
            else:
                yield b": keep-alive\n\n"
            try:
                await asyncio.wait_for(watch.changed.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                continue
            await asyncio.sleep(COALESCE_SECONDS)


async def batch_events(request: Request) -> StreamingResponse:
    ctx, batch = await _owned(request, gate=True)
    free = SLOTS.take(batch.tenant, ctx.settings.max_event_streams_per_key)
    return _SlotStream(_stream(ctx, batch.id), free)
