"""JSON responses, error bodies and bounded (buffered or spooled) body reads shared by
every route."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, BinaryIO, cast

import anyio
import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.buffers import hold
from gateway.context import context
from jobs.errors import ErrorCode, FleetError

log = logging.getLogger("imagefleet.gateway")
_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error_response(exc: FleetError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.to_dict()}, status_code=exc.status, headers=exc.headers or None
    )


# Longer parts of a key are names the directory store cannot make (most filesystems).
# Bodies up to 256 KiB stay in memory; larger ones go to disk in writes of that size (with
# 1 MiB, 40 parallel 47 MB uploads raised the gateway's peak RSS by 90 MB, with this by 50).
SPOOL_IN_MEMORY = 1 << 18
SPOOLED_AT_ONCE = 2 * SPOOL_IN_MEMORY  # in the spool and in the write being gathered


def _too_large(limit: int) -> FleetError:
    return FleetError(ErrorCode.PAYLOAD_TOO_LARGE, f"body is over the {limit}-byte limit")


def declared_length(request: Request, limit: int) -> int | None:
    """The body's Content-Length, if it declares one; over `limit` it is refused (413)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        return int(declared)
    return None


async def _chunks(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks, refusing (413) as soon as it passes `limit` bytes, and (400) once
    its bytes took longer than FLEET_BODY_TIMEOUT_SECONDS to come, in all: a client that
    drips its body holds its connection and its share of the buffer budget that long at
    most. A client that hangs up is one INFO line and an error reply nobody reads, not a
    traceback."""
    waited, patience = 0.0, context(request).settings.body_timeout
    size = 0
    stream = request.stream()
    try:
        while True:
            began = time.monotonic()
            with anyio.move_on_after(patience - waited) as late:
                chunk = await anext(stream, None)
            if late.cancelled_caught:
                raise FleetError(
                    ErrorCode.VALIDATION_ERROR,
                    f"the body did not arrive within {patience:g} s; the connection is closed",
                )
            waited += time.monotonic() - began
            if chunk is None:
                return
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            yield chunk
    except ClientDisconnect:
        log.info(
            "%s %s: the client disconnected after %d body bytes; nothing kept",
            request.method,
            request.url.path,
            size,
        )
        raise FleetError(ErrorCode.VALIDATION_ERROR, "the client disconnected") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over `limit` bytes before buffering it all.
    Its declared length (or `limit`) is taken from the buffer budget first (gateway/buffers.py:
    503 past it, unread)."""
    declared = declared_length(request, limit)
    hold(request, limit if declared is None else declared)
    async with aclosing(_chunks(request, limit)) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def spool_body(request: Request, limit: int) -> tuple[BinaryIO, int]:
    """The request body in a temporary file the caller closes, and its size: 413 as soon as
    it passes `limit`, 400 when empty. Past SPOOL_IN_MEMORY it goes to disk, written off the
    event loop, so no upload sits whole in gateway memory."""
    declared = declared_length(request, limit)
    hold(request, min(limit if declared is None else declared, SPOOLED_AT_ONCE))
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    pending, size = bytearray(), 0
    try:
        async with aclosing(_chunks(request, limit)) as chunks:
            async for chunk in chunks:
                pending += chunk
                if len(pending) >= SPOOL_IN_MEMORY:
                    await run_in_threadpool(spool.write, pending)
                    size += len(pending)
                    pending.clear()
        if size:  # on disk already: the last write is a disk write too
            await run_in_threadpool(spool.write, pending)
        else:
            spool.write(pending)
        size += len(pending)
        if not size:
            raise FleetError(
                ErrorCode.VALIDATION_ERROR, "the body is empty; send the object's bytes"
            )
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return cast(BinaryIO, spool), size
