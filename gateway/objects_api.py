"""`PUT` / `GET /v1/objects/{key}`: the caller's namespace only."""

from __future__ import annotations

import mimetypes

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import authenticate, context
from gateway.http import JSONResponse, checked_key, read_body
from jobs.errors import ErrorCode, FleetError
from storage import ObjectNotFound, tenant_key


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


async def put_object(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    key = checked_key(request.path_params["key"], "key")
    data = await read_body(request, ctx.settings.max_object_bytes)
    if not data:
        raise FleetError(ErrorCode.VALIDATION_ERROR, "the body is empty; send the object's bytes")
    content_type = request.headers.get("content-type") or _content_type(key)
    await run_in_threadpool(ctx.objects.put, tenant_key(tenant, key), data, content_type)
    return JSONResponse(
        {"key": key, "bytes": len(data), "url": f"{ctx.settings.public_url}/v1/objects/{key}"},
        status_code=201,
    )


async def get_object(request: Request) -> Response:
    tenant = await authenticate(request)
    key = checked_key(request.path_params["key"], "key")
    try:
        data = await run_in_threadpool(context(request).objects.get, tenant_key(tenant, key))
    except ObjectNotFound:
        raise FleetError(ErrorCode.NOT_FOUND, f"no object {key!r}") from None
    return Response(data, media_type=_content_type(key))
