"""`PUT` / `GET /v1/objects/{key}`: the caller's namespace only."""

from __future__ import annotations

import mimetypes

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.bodies import StoredObject
from gateway.context import authenticate, context
from gateway.http import SPOOL_IN_MEMORY, JSONResponse, spool_body
from gateway.keys import checked_key
from jobs.errors import ErrorCode, FleetError
from storage import KeyConflict, ObjectNotFound, tenant_key

# Large uploads copied to the store at once: they take no more than this many of the
# gateway's threads, and on S3 each holds a 5 MiB part in memory while it sends (8 at once
# measured +150 MB of peak RSS under 40 parallel 47 MB uploads, 4 at once +90 MB).
_LARGE_WRITES = CapacityLimiter(4)


# Stored objects are whatever a tenant uploaded: served so a browser never runs them as a
# page of this origin (an uploaded HTML or SVG would script the console's origin otherwise).
# No sniffing into an active type, no scripts, plugins or fetches, a sandboxed origin.
OBJECT_CSP = "default-src 'none'; sandbox"
# Types a browser renders as a document with scripts: downloaded, never shown inline.
_DOCUMENT_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml"}
)


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def object_response(data: bytes, content_type: str) -> Response:
    """A stored object's bytes as every download route serves them (`GET /v1/objects`,
    gateway-signed links): `nosniff`, a CSP that allows nothing, and documents (HTML, SVG,
    XML) as attachments."""
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": OBJECT_CSP}
    if content_type.split(";", 1)[0].strip().lower() in _DOCUMENT_TYPES:
        headers["Content-Disposition"] = "attachment"
    return Response(data, media_type=content_type, headers=headers)


async def store_body(request: Request, storage_key: str, content_type: str) -> int:
    """Stream the request body (under the object limit, not empty) to `storage_key`; its
    size. Spooled first, so a refused or abandoned body never reaches the store."""
    ctx = context(request)
    spool, size = await spool_body(request, ctx.settings.max_object_bytes)
    with spool:
        large = size > SPOOL_IN_MEMORY  # small bodies never wait behind large ones
        try:
            await anyio.to_thread.run_sync(
                ctx.objects.put_stream,
                storage_key,
                spool,
                size,
                content_type,
                limiter=_LARGE_WRITES if large else None,
            )
        except KeyConflict:  # the directory store: a folder, or a key inside an object
            raise FleetError(
                ErrorCode.OUTPUT_CONFLICT,
                "this key is a folder of other objects, or lies inside an object: a key"
                " cannot be both an object and a folder",
            ) from None
    return size


async def put_object(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    key = checked_key(request.path_params["key"], "key")
    size = await store_body(
        request, tenant_key(tenant, key), request.headers.get("content-type") or _content_type(key)
    )
    return JSONResponse(
        StoredObject(key, size, f"{ctx.settings.public_url}/v1/objects/{key}"), status_code=201
    )


async def get_object(request: Request) -> Response:
    tenant = await authenticate(request)
    key = checked_key(request.path_params["key"], "key")
    try:
        data = await run_in_threadpool(context(request).objects.get, tenant_key(tenant, key))
    except ObjectNotFound:
        raise FleetError(ErrorCode.NOT_FOUND, f"no object {key!r}") from None
    return object_response(data, _content_type(key))
